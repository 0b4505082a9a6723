"""Figure ``adaptive_seeds``: what adaptive seeds save over a fixed number, and what they cost.

    python -m bench --only adaptive_seeds

A simulation, no Ray, no training: the question of logbook 001 and ``spaces/qk_norm_tuned.yaml``,
qk_norm (none, rms_norm, fro_norm) x attn_activ (softmax, sigmoid) = 6 configurations, whose
final val/loss is its planted mean plus seed noise. Calibration, from the measured figures in
``spaces/attn_variants.yaml`` (logbook 001 at abl's laptop budget, 5 seeds each): seed SD
0.008-0.009 within a configuration (softmax 2.247 +- 0.008, sigmoid 2.251 +- 0.009), so
sigma = 0.009; differences between arms, in sigmas: sigmoid - softmax 0.5 (0.004),
post_attn_norm 1-2 (0.01-0.02), rope vs randn in ``bigram_pe`` about 1 (0.042 at seed SD
0.04), rms_norm vs none and fro_norm vs none 6-11 (0.05-0.10). Each simulated sweep draws the
attn_activ effect and the two qk_norm effects from EFFECTS (0 to 8 sigma); noise is
independent between trials (no shared seed effect, which would favour the paired tests).

Each sweep runs twice on the same draws: adaptive ``repeats: {min: 4, max: 10}`` through
:func:`abl.results.sequential.assess`, round by round as the searcher drives it, and fixed
``repeats: 10`` analysed with one look (the same function with min = max = 10: plain paired
t-tests, Holm over the same family). Measures: the share of comparisons with the same
decision, keyed by the pair compared (the target): every comparison that either design's
report shows (its leader against each configuration, every axis pair), with each design's
decision on that same pair of configurations (or axis values), which each design's Holm
family holds whether or not that design reports it; keyed by role (each configuration against
*the* leader, for information: a different leader makes every such comparison differ, though
it asks another question rather than answering the same one otherwise); the false decision
rate in sweeps with no difference at all (any decision there is false); trials adaptive /
fixed; the share of sweeps with <= 0.5x the trials and >= 95% of decisions (by pair) the same;
the same for ``{min: 2, max: 10}``; two fixed 10-seed runs' agreement on independent seeds;
and the share of planted differences each design decides the right way, against a fixed
design of the same trials (:func:`_ceiling`). Adaptive stops a comparison
for futility (``SeedPlan.futility``, conditional power); that counts as undecided, so it
agrees where the fixed design decides nothing; the share stopped so is reported. A margin of
0.01 (the issue's example, ~1.1 sigma) is run too, for information.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from abl.results.sequential import Assessment, Comparison, SeedPlan, assess
from bench._figure import Figure, Target, at_least, at_most

REPEATS = 1  # 200 sweeps already average the noise; the seed is fixed
SIGMA = 0.009  # seed SD of final val/loss, attn_variants (logbook 001)
EFFECTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)  # planted differences, in sigmas
SWEEPS, QUICK_SWEEPS = 200, 20
ALPHA, MARGIN = 0.05, 0.01
UNEVEN_SD = (0.002, 0.07)  # seed SDs across configurations in attn_positions (logbook 001)
TOL = 1e-12  # planted differences below this are none (float sums of equal effects)
# min 4: the recommended start when max is 10. min 2 (the example) is measured too:
# at the same trials it agrees less (0.918 against 0.951), as 2-3 seeds estimate the seed SD and
# each comparison's trend too poorly for futility to stop the right comparisons.
ADAPTIVE, FIXED = SeedPlan(4, 10, ALPHA), SeedPlan(10, 10, ALPHA)
FROM_TWO = SeedPlan(2, 10, ALPHA)
PAIR_EFFECTS = (2.0, 4.0, 8.0, 16.0)  # one pair of configurations alone, in sigmas
PAIR_SWEEPS, QUICK_PAIR_SWEEPS = 50, 5
CONFIGS = [
    {"qk_norm": q, "attn_activ": a}
    for q in ("none", "rms_norm", "fro_norm")
    for a in ("softmax", "sigmoid")
]


def means(rng: np.random.Generator, null: bool) -> np.ndarray:
    """The planted mean of each configuration: 2.25 plus an effect per axis value."""
    if null:
        return np.full(len(CONFIGS), 2.25)
    act, rms, fro = rng.choice(EFFECTS, 3) * SIGMA
    qk = {"none": 0.0, "rms_norm": rms, "fro_norm": fro}
    return np.array(
        [2.25 + qk[c["qk_norm"]] + (act if c["attn_activ"] == "sigmoid" else 0) for c in CONFIGS]
    )


def adaptive(
    y: np.ndarray, plan: SeedPlan, configs: list[dict[str, str]] = CONFIGS
) -> tuple[Assessment, int]:
    """Drive assess as the searcher does: each round, every open configuration gets the seeds
    the next look needs. Returns the last assessment and the trials run."""
    values: list[dict[int, float]] = [
        {s: float(y[i, s]) for s in range(plan.min)} for i in range(len(y))
    ]
    while True:
        now = assess(configs, values, plan, "min")
        if now.done:
            return now, sum(len(v) for v in values)
        for c in now.configs:
            if c.open:
                for s in range(len(values[c.index]), now.need):
                    values[c.index][s] = float(y[c.index, s])


def decisions(a: Assessment) -> dict[tuple[str, ...], str]:
    """Each comparison's decision, keyed so that a different leader counts as disagreeing;
    stopped for futility counts as undecided ("not distinguishable by max seeds" is what the
    fixed design says of a comparison it leaves open)."""
    out: dict[tuple[str, ...], str] = {}
    for c in a.comparisons:
        verdict = "open" if c.verdict == "futile" else c.verdict
        if c.axis is None:
            out[("leader", c.a, c.b)] = verdict
        else:
            out[(c.axis, c.a, c.b)] = verdict
    return out


def pair_decisions(a: Assessment) -> dict[tuple[str, ...], str]:
    """Each pair of configurations' decision, keyed by the pair (whichever leads) and told as
    the better configuration's index; axis pairs as in :func:`decisions`."""
    out: dict[tuple[str, ...], str] = {}
    for c in a.pairs:
        i, j = sorted(c.members)
        better = {"a": str(i), "b": str(j)}.get(c.verdict)
        out[("pair", str(i), str(j))] = better or ("open" if c.verdict == "futile" else c.verdict)
    for c in a.comparisons:
        if c.axis is not None:
            out[(c.axis, c.a, c.b)] = "open" if c.verdict == "futile" else c.verdict
    return out


def reported(a: Assessment) -> set[tuple[str, ...]]:
    """The comparisons a report shows, keyed as in :func:`pair_decisions`."""
    return {
        ("pair", *map(str, sorted(c.members))) if c.axis is None else (c.axis, c.a, c.b)
        for c in a.comparisons
    }


@dataclass
class Sweep:
    """One simulated sweep, adaptive and fixed on the same draws."""

    trials: int  # adaptive
    fixed_trials: int
    same: float  # share of comparisons with the same decision
    false: bool  # adaptive: some decision contradicts the planted means
    fixed_false: bool
    futile: float = 0.0  # adaptive: share of comparisons stopped for futility
    other_leader: bool = False  # adaptive's leader is not fixed 10 seeds' leader
    axes_same: float = 1.0  # share of axis comparisons with the same decision
    lost: float = 0.0  # share of comparisons stopped for futility that fixed 10 seeds decides
    pair_same: float = 1.0  # share of comparisons either design reports (its leader's pairs,
    # the axis pairs) on which both designs decide the same, keyed by the pair compared


def sweep(
    rng: np.random.Generator, null: bool, plan: SeedPlan, fixed: SeedPlan, *, uneven: bool = False
) -> Sweep:
    """Draw one sweep and run both designs on it (``uneven``: each configuration its own
    seed SD, log-uniform over UNEVEN_SD)."""
    mu = means(rng, null)
    sd = np.exp(rng.uniform(*np.log(UNEVEN_SD), (len(CONFIGS), 1))) if uneven else SIGMA
    y = mu[:, None] + sd * rng.normal(0.0, 1.0, (len(CONFIGS), FIXED.max))
    got, trials = adaptive(y, plan)
    ref = assess(CONFIGS, _rows(y), fixed, "min")
    a, b = decisions(got), decisions(ref)
    keys = set(a) | set(b)
    same = sum(a.get(k) == b.get(k) for k in keys) / len(keys)
    stopped = [c for c in got.comparisons if c.verdict == "futile"]
    futile = len(stopped) / max(len(got.comparisons), 1)
    lost = sum(
        b.get(("leader", c.a, c.b) if c.axis is None else (c.axis, c.a, c.b)) not in (None, "open")
        for c in stopped
    ) / max(len(got.comparisons), 1)
    pair_same = _pair_same(got, ref)
    axis_keys = [k for k in keys if k[0] != "leader"]
    axes_same = sum(a.get(k) == b.get(k) for k in axis_keys) / max(len(axis_keys), 1)
    return Sweep(
        trials,
        y.size,
        same,
        _false(got, mu, plan),
        _false(ref, mu, fixed),
        futile=futile,
        lost=lost,
        other_leader=got.leader != ref.leader,
        axes_same=axes_same,
        pair_same=pair_same,
    )


def _pair_same(a: Assessment, b: Assessment) -> float:
    """The share of comparisons either report shows on which both decide the same, by pair."""
    pa, pb = pair_decisions(a), pair_decisions(b)
    shown = reported(a) | reported(b)
    return sum(pa[k] == pb[k] for k in shown) / len(shown)


def _axis_diff(c: Comparison, mu: np.ndarray) -> float:
    """The planted difference of an axis comparison: mean of a's cells less mean of b's."""
    side = {v: [i for i in c.members if CONFIGS[i][c.axis] == v] for v in (c.a, c.b)}
    return float(np.mean(mu[side[c.a]]) - np.mean(mu[side[c.b]]))


def _false(a: Assessment, mu: np.ndarray, plan: SeedPlan) -> bool:
    """Whether a decision contradicts the planted means: "a is better" where it is not
    (a difference of 0 included), or "equivalent" where they differ by the margin or more."""
    for c in a.comparisons:
        if c.axis is None:
            (other,) = c.members - {a.leader}
            true = mu[a.leader] - mu[other]
        else:
            true = _axis_diff(c, mu)
        if (c.verdict == "a" and true > -TOL) or (c.verdict == "b" and true < TOL):
            return True
        if c.verdict == "equivalent" and plan.margin is not None and abs(true) >= plan.margin:
            return True
    return False


def _run(
    n: int, null: bool, plan: SeedPlan, fixed: SeedPlan, seed: int, *, uneven: bool = False
) -> list[Sweep]:
    rng = np.random.default_rng(seed)
    return [sweep(rng, null, plan, fixed, uneven=uneven) for _ in range(n)]


def run(quick: bool) -> Figure:
    """Adaptive {min: 2, max: 10} against fixed 10 seeds over simulated sweeps."""
    n = QUICK_SWEEPS if quick else SWEEPS
    fig = Figure(
        "adaptive_seeds",
        f"adaptive seeds (min {ADAPTIVE.min}, max 10) vs 10 fixed seeds, {n} simulated 2x3 sweeps",
    )
    planted = _run(n, False, ADAPTIVE, FIXED, 1)
    null = _run(n, True, ADAPTIVE, FIXED, 2)
    _measures(fig, planted, null, "", strict=True)
    _measures(
        fig,
        _run(n, False, FROM_TWO, FIXED, 1),
        _run(n, True, FROM_TWO, FIXED, 2),
        "min 2: ",
        strict=False,
    )
    _ceiling(fig, n)
    with_margin = SeedPlan(ADAPTIVE.min, 10, ALPHA, MARGIN)
    fixed_margin = SeedPlan(10, 10, ALPHA, MARGIN)
    _measures(
        fig,
        _run(n, False, with_margin, fixed_margin, 1),
        _run(n, True, with_margin, fixed_margin, 2),
        f"margin {MARGIN:g}: ",
        strict=False,
    )
    uneven = _run(n, True, ADAPTIVE, FIXED, 4, uneven=True)
    fig.add(
        f"no difference, seed SD {UNEVEN_SD[0]:g}-{UNEVEN_SD[1]:g} by configuration: sweeps "
        "with a false decision (adaptive)",
        statistics.mean(s.false for s in uneven),
        "share",
    )
    pair_sweeps = QUICK_PAIR_SWEEPS if quick else PAIR_SWEEPS
    rng = np.random.default_rng(3)
    for effect in PAIR_EFFECTS:
        seeds = [_pair_seeds(rng, effect) for _ in range(pair_sweeps)]
        fig.add(
            f"two configurations {effect:g} SD apart, min 2: mean seeds each (to a decision or "
            "max)",
            statistics.mean(seeds),
            "seeds",
        )
    fig.notes.append(
        f"{len(CONFIGS)} configurations (qk_norm x attn_activ), seed SD {SIGMA:g} (attn_variants, "
        f"logbook 001), planted axis effects drawn from {EFFECTS} SDs; {n} sweeps with planted "
        f"differences and {n} with none; alpha {ALPHA:g}, Holm over 15 config pairs + 4 axis pairs"
    )
    fig.notes.append(
        f"futility: a comparison that is grounds to continue stops as not distinguishable once "
        f"its conditional power of a decision by 10 seeds falls below {ADAPTIVE.futility:g} "
        "(SeedPlan.futility); it counts as agreeing where 10 fixed seeds leave it undecided"
    )
    fig.notes.append(
        "agreement, the target, is keyed by the pair compared: the issue asks for 'the same "
        "decisions in at least 95% of the comparisons', and a comparison is a question about two "
        "configurations (or two axis values); when the designs pick different leaders (a tie "
        "stopped early), 'x vs the leader' is another question in each, not the same one "
        "answered otherwise. Every comparison either report shows counts, with both designs' "
        "decisions on that pair from their whole Holm family, so none is dropped; the role-keyed "
        "share (every 'vs leader' comparison differs when leaders do) is printed beside it"
    )
    fig.notes.append(
        "min 2, one seed variance for all comparisons (SeedPlan.pooled, the two-way residual "
        "configuration x seed index): a pair has 5 df at 2 seeds in place of 1; the fixed design "
        "pools too (45 df at 10 seeds), so it decides more. Each comparison's own variance "
        "(pooled=False) on these draws: by pair 0.926, by role 0.843, trials 0.741x, no "
        "difference 0.01; pooled: 0.918 / 0.818 / 0.695x / 0.01. 3000 null sweeps: 0.022 "
        "pooled, 0.027 per comparison; one configuration at 2x the seed SD: 0.026 and 0.025"
    )
    fig.notes.append(
        "min 2, futility thresholds tried on these draws, pooled (agreement by pair / by role / "
        "trials / false decisions, no difference): none 0.966 / 0.966 / 0.929x / 0.02; 0.05 "
        "0.928 / 0.839 / 0.714x / 0.015; 0.1 0.918 / 0.818 / 0.695x / 0.01; 0.2 0.906 / 0.809 / "
        "0.671x / 0.00; before pooling, by role: none 0.977 / 0.942x, 0.05 0.861 / 0.759x, "
        "0.1 0.843 / 0.741x, 0.2 0.822 / 0.716x; none meets both targets, and 0.1 "
        "(conditional power) is kept as the conventional point of that frontier"
    )
    fig.notes.append(
        "min 4 against min 2: the same trials (0.695x both), agreement by pair 0.951 against "
        "0.918; other starts on these draws (agreement by pair / trials): min 3 0.935 / "
        "0.694x, min 5 with futility 0.2 0.953 / 0.699x, min 4 with futility 0.2 0.944 / "
        "0.671x; in trials of options not kept, sparser looks cost trials (2, 4, 10 seeds: "
        "0.937 / 0.912x; 2, 3, 5, 7, 10: 0.928 / 0.764x); an O'Brien-Fleming boundary relaxed "
        "toward Pocock (Wang-Tsiatis "
        "0.25, min 2, futility 0.05) 0.918 / 0.651x. Fresh draws (seeds 11, 12): min 4 0.954 / "
        "0.712x, min 2 0.921 / 0.693x"
    )
    fig.notes.append(
        "what the figures are worth: two fixed 10-seed runs on independent seeds agree on "
        "about 0.91 of comparisons, so agreement with one fixed run above that is agreement on "
        "the seeds both designs share; and decided the right way, adaptive does about as well "
        "as a fixed design of the same trials (see those measures): on these effect sizes, "
        "adaptive seeds buy the fixed design's decisions at fewer trials where differences are "
        "large or absent, not more correct decisions for the same trials"
    )
    fig.notes.append(
        "why agreement falls: comparisons with a real 1-2 SD difference stopped for futility "
        "that 10 seeds decide (see that measure), and a leader and a tied twin stopped at few "
        "seeds, which the role-keyed share counts as every comparison against the leader"
    )
    fig.notes.append(
        "why 0.5x stays out of reach: min 4 alone is 0.4x; with min 2, even pooled, nothing "
        "is decided at 2 seeds and little at 3 (an O'Brien-Fleming boundary asks the most of "
        "early looks: a z of about 7 at the first of 9 looks with Holm over 19), and a real "
        "0.5-2 SD difference is neither decided "
        "nor clearly futile early; an open axis pair keeps every configuration of its cells "
        "running"
    )
    return fig


def _ceiling(fig: Figure, n: int) -> None:
    """What agreement and a decision are worth: two fixed 10-seed runs on independent seeds
    (the same planted means) agree on this share of comparisons (by pair, as the target
    counts), which bounds what "the same decisions" can mean; and the share of the questions
    the design asks (the truly best configuration against each other, every axis pair) with
    a planted difference that each design decides the right way, adaptive against a fixed
    design of about the same trials (the first k seeds, k = 10 x adaptive's trial ratio)."""
    rng = np.random.default_rng(5)
    agree, runs = [], []
    for _ in range(n):
        mu = means(rng, False)
        y, again = (
            mu[:, None] + SIGMA * rng.normal(0.0, 1.0, (len(CONFIGS), FIXED.max)) for _ in range(2)
        )
        a, b = (assess(CONFIGS, _rows(v), FIXED, "min") for v in (y, again))
        agree.append(_pair_same(a, b))
        got, trials = adaptive(y, ADAPTIVE)
        runs.append((mu, y, got, trials))
    fig.add(
        "10 fixed seeds vs 10 fixed seeds on independent seeds: comparisons with the same "
        "decision (keyed by the pair)",
        statistics.mean(agree),
        "share",
    )
    k = round(FIXED.max * sum(r[3] for r in runs) / (len(runs) * len(CONFIGS) * FIXED.max))
    designs = {f"adaptive (min {ADAPTIVE.min})": [], "fixed 10 seeds": [], f"fixed {k} seeds": []}
    for mu, y, got, _ in runs:
        designs[f"adaptive (min {ADAPTIVE.min})"].append(_right(got, mu))
        designs["fixed 10 seeds"].append(_right(assess(CONFIGS, _rows(y), FIXED, "min"), mu))
        short = SeedPlan(k, k, ALPHA)
        designs[f"fixed {k} seeds"].append(
            _right(assess(CONFIGS, _rows(y[:, :k]), short, "min"), mu)
        )
    for name, counts in designs.items():
        fig.add(
            f"planted differences decided the right way, best vs each and axis pairs: {name}",
            sum(c for c, _ in counts) / max(sum(m for _, m in counts), 1),
            "share",
        )


def _rows(y: np.ndarray) -> list[dict[int, float]]:
    return [{s: float(v) for s, v in enumerate(row)} for row in y]


def _right(a: Assessment, mu: np.ndarray) -> tuple[int, int]:
    """(decided the right way, asked) over the truly best configuration's pairs and the axis
    pairs, counting only those with a planted difference."""
    best, right, asked = int(np.argmin(mu)), 0, 0
    for c in a.pairs + [c for c in a.comparisons if c.axis is not None]:
        if c.axis is None:
            if best not in c.members:
                continue
            i, j = sorted(c.members)
            true = mu[i] - mu[j]
        else:
            true = _axis_diff(c, mu)
        if abs(true) < TOL:
            continue
        asked += 1
        right += (c.verdict == "a" and true < 0) or (c.verdict == "b" and true > 0)
    return right, asked


def _pair_seeds(rng: np.random.Generator, effect: float) -> float:
    """Seeds the worse of two configurations ``effect`` SDs apart runs before it stops."""
    y = np.array([[0.0], [effect * SIGMA]]) + rng.normal(0.0, SIGMA, (2, ADAPTIVE.max))
    _, trials = adaptive(y, FROM_TWO, [{"arm": "a"}, {"arm": "b"}])
    return trials / 2


def _measures(
    fig: Figure, planted: list[Sweep], null: list[Sweep], prefix: str, *, strict: bool
) -> None:
    def target(t: Target) -> Target | None:
        return t if strict else None

    ratio = sum(s.trials for s in planted) / sum(s.fixed_trials for s in planted)
    same = statistics.mean(s.pair_same for s in planted)
    false = statistics.mean(s.false for s in null)
    fig.add(
        f"{prefix}comparisons with the same decision as 10 fixed seeds (keyed by the pair)",
        same,
        "share",
        target(at_least(0.95)),
    )
    fig.add(
        f"{prefix}comparisons with the same decision as 10 fixed seeds (keyed by role: vs "
        "the leader)",
        statistics.mean(s.same for s in planted),
        "share",
    )
    fig.add(
        f"{prefix}sweeps with no difference and a false decision (adaptive)",
        false,
        "share",
        target(at_most(ALPHA)),
    )
    fig.add(
        f"{prefix}sweeps with no difference and a false decision (fixed 10 seeds)",
        statistics.mean(s.fixed_false for s in null),
        "share",
    )
    fig.add(
        f"{prefix}sweeps with planted differences and a false decision (adaptive)",
        statistics.mean(s.false for s in planted),
        "share",
        target(at_most(ALPHA)),
    )
    fig.add(
        f"{prefix}sweeps with planted differences and a false decision (fixed 10 seeds)",
        statistics.mean(s.fixed_false for s in planted),
        "share",
    )
    fig.add(
        f"{prefix}trials adaptive / fixed, planted differences", ratio, "x", target(at_most(0.5))
    )
    null_ratio = sum(s.trials for s in null) / sum(s.fixed_trials for s in null)
    fig.add(f"{prefix}trials adaptive / fixed, no difference", null_ratio, "x")
    fig.add(
        f"{prefix}comparisons stopped for futility, planted differences",
        statistics.mean(s.futile for s in planted),
        "share",
    )
    fig.add(
        f"{prefix}comparisons stopped for futility that 10 fixed seeds decide",
        statistics.mean(s.lost for s in planted),
        "share",
    )
    fig.add(
        f"{prefix}sweeps whose leader is not 10 fixed seeds' leader",
        statistics.mean(s.other_leader for s in planted),
        "share",
    )
    fig.add(
        f"{prefix}axis comparisons with the same decision as 10 fixed seeds",
        statistics.mean(s.axes_same for s in planted),
        "share",
    )
    fig.add(
        f"{prefix}comparisons stopped for futility, no difference",
        statistics.mean(s.futile for s in null),
        "share",
    )
    both = statistics.mean(
        s.trials <= 0.5 * s.fixed_trials and s.pair_same >= 0.95 for s in planted
    )
    fig.add(
        f"{prefix}sweeps with <= 0.5x the trials and >= 95% of decisions the same", both, "share"
    )
