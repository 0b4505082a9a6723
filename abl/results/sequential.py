"""Adaptive seeds: add seeds only where a comparison is still undecided, without inflating
false positives (issue 18; SCIENCE.md point 6).

A space's ``repeats: {min: 2, max: 10, alpha: 0.05, margin: 0.01}`` becomes a
:class:`SeedPlan`. Every configuration gets ``min`` seeds; then, round by round, only the
configurations that take part in an undecided comparison get one more, until every comparison
is decided or stopped for futility, or they reach ``max``::

    from abl.results.sequential import SeedPlan, assess

    plan = SeedPlan(min=2, max=10, alpha=0.05)
    now = assess(configs, values, plan, "min")   # values[i]: {seed index: final metric}
    wanted = [c.index for c in now.configs if c.open]   # each up to now.need seeds

**The comparisons.** (1) Every configuration against the *leader* (best mean); (2) for every
ablation axis (a key whose value varies), every pair of its values matched on the other axes
(cells) and paired by seed index, as :func:`abl.results.comparisons.compare_axes` pairs them.
Each comparison's unit is a paired difference (seed i of A minus seed i of B, per cell).

**The procedure** (group-sequential paired t-tests). Look l is made after ``min + l`` seeds,
at most ``L = max - min + 1`` looks, information fraction t_l = (min + l) / max. At each look
a comparison's paired t-test p-value becomes a z with the same tail (so few seeds are charged
their heavy t tails) and a B-value B_l = z_l sqrt(t_l) (Lan & Wittes 1988). Its *sequential
p-value* is G(b) = P(max_l |B_l| >= b) under no difference, b being the largest |B_l| it has
shown: the O'Brien-Fleming-type constant boundary on the B scale (O'Brien & Fleming 1979).
For Brownian motion at the planned t_l, G is computed by recursive integration
(:mod:`abl.results._boundary`; it matches Jennison & Turnbull's (2000) Table 2.3 constants),
but with 2-5 seeds the t-tests' z-values are less correlated from look to look than Brownian
motion's, and that G let one pair decide 5.7% of the time at alpha = 0.05 (2 to 10 seeds,
3000 simulated null sweeps). So G is the simulated null distribution of the t-based statistic
itself, which under normal seed noise is pivotal (:func:`abl.results._boundary.t_tail`, per
plan and number of matched cells; 4.8% in the same check), with the Brownian tail rescaled
beyond its simulated range. Looks a comparison skipped only lower b, so G(b) >= G(max over
all planned looks), which is uniform under no difference: the p-value stays valid whatever
decided which looks were seen. Holm's step-down over the family (group-sequential Holm:
Ye, Li, Jiang, Zhang & Zhou 2013; Tamhane, Mehta & Liu 2010) decides: p-values that only
shrink keep Holm's adjusted ones shrinking, so a decision, once made, is kept (it is frozen at
its look). A tie is a decision too when a margin is given: the repeated confidence interval
(Jennison & Turnbull 1989) of level 1 - alpha/m on the same simulated boundary
(:func:`abl.results._boundary.t_critical`) lies inside (-margin, margin).

**One seed variance for all comparisons** (``SeedPlan.pooled``, the default). A paired t-test
on 2-3 seeds has 1-2 degrees of freedom, and its boundary at the first looks asks for a
t of hundreds. Under the usual ANOVA assumption, y[i, s] = mu_i + beta_s + e[i, s] with the
*same* seed SD in every configuration (beta_s: what seed index s shares across them, which a
paired difference cancels), the residual of the two-way layout configuration x seed index
estimates that SD from every configuration at once: a pair among 6 configurations has 5 df
at 2 seeds in place of 1 (:mod:`abl.results._pooled`). Seed counts differ once some
configurations stop, and which ones did is the procedure's own doing; the residual of a
comparison at n seeds is therefore taken over a pattern fixed by the comparison and the look
alone, its members at seeds < n and every other configuration of the pool (unpruned, a value
at each of the first ``min`` seeds) at seeds < min, never over seeds that exist only because
a configuration was kept open. The comparison's mean difference lies in that layout's model
space, so its t has exactly (K - m)(min - 1) + (m - 1)(n - 1) df at every look (K pool
configurations, m members), the statistic of every planned look is defined whatever the
stopping decisions, and under normal homoscedastic noise it is pivotal: its null law over
looks is simulated per (min, max, cells, others) (:func:`abl.results._boundary.t_tail`), and
the argument below on skipped looks holds unchanged. A member without a value at a seed < n
(a failed trial) sends that comparison back to its own paired differences. *The check*
(3000 null sweeps of the bench's 2x3 grid, 2 to 10 seeds): a false decision in 2.2% of them
(2.7% with each comparison's own variance); with one configuration at twice the others' seed
SD, which the assumption excludes, 2.6% (2.5% per comparison; its pairs' SE is under-stated,
the others' over-stated); with seed SDs 0.002-0.07 by configuration (the bench), 1.5% (0%). The cost: a seed effect that differs
between configurations (one per cell, say) is residual noise to the pooled model, which then
decides less, not wrongly; ``pooled=False`` is the per-comparison procedure.

**The family, and why the leader costs something.** The leader is picked from the data, so
"every configuration against the leader" is not a fixed family: its most extreme pair is the
best against the worst, and Holm over those K - 1 tests alone exceeds alpha (0.10 at K = 6
with 10 seeds and one look, by simulation; 0.035 with the family below). The family
is therefore *every pair of configurations* plus every axis pair (m = K(K-1)/2 + the axis
pairs over two cells or more; an axis pair over one cell is a pair of configurations, once):
Holm controls the family-wise error over it whatever the dependence, so the leader's pairs,
a data-chosen subset, inherit it. Only the leader's pairs and the axis pairs keep
configurations running; the others enter Holm and can decide (a configuration decided worse
than any other can no longer lead). Directional (type III) errors are counted as false
decisions. False "equivalent" calls need |difference| >= margin, a different state of
nature; each has probability <= alpha/(2m), so all decisions together are wrong with
probability <= 1.5 alpha in the worst case and <= alpha when no true difference reaches the
margin. ``bench/adaptive_seeds.py`` and the tests measure the rate with no difference.

**Futility (non-binding).** A fixed ``max``-seed design says of many comparisons "not
distinguishable at max seeds"; reaching that answer early is a decision too. After each look's
decisions, every open comparison that is grounds to continue (the leader's pairs, the axis
pairs) gets its *conditional power*: the probability of a decision by ``max`` seeds under the
current trend (Lachin 2005, "A review of methods for futility stopping based on conditional
power", Stat. Med. 24; Jennison & Turnbull 2000, ch. 10). The trend is the observed mean
difference and SD per unit, plugged in, so the paired t at max seeds is about
N(t sqrt(N / n), 1 - n / N), t being the t statistic itself (the z of a 1-df t-test is
shrunk, which would under-state a real trend). It is rejected where it crosses the final
look's boundary (the lowest of all looks on this scale) at the level Holm gives the first
open hypothesis, alpha / (hypotheses not yet rejected); the continuous-path crossing
probability (reflection) bounds every remaining look's, and that level is the most lenient an
open hypothesis faces now, so power is over- rather than under-stated. With a margin, the
probability that the final repeated interval fits inside it is added. Below
``SeedPlan.futility`` (default :data:`FUTILITY` = 0.1; None turns it off) the comparison
stops as ``"futile"`` and is frozen at its look like a decision: it stays futile at every
later look (a leader's change makes the new leader's *open* pairs grounds; a futile pair stays
futile), its p-value stays in Holm's family at its frozen value, and it keeps no
configuration running. Conditional power under the trend rather than predictive power: it is
the usual rule and in closed form; predictive power (flat prior) traces the same
agreement-for-trials frontier in the simulation, at a higher threshold (0.2 there is about
0.1 here). *Validity*: the boundary is
computed as if there were no futility (non-binding), and stopping only removes looks: every
p-value stays >= the all-looks one, and Holm is monotone in its p-values, so the bound on
false decisions above is unchanged (``bench/adaptive_seeds.py``: 0.01 of null sweeps with it,
0.02 without). Its cost is agreement with the fixed design: a real 1-2 SD difference can be
stopped that 10 seeds would decide, and a leader and a tied twin stopped at few seeds leave
the leader picked from few seeds.

**Replay.** :func:`assess` uses the data alone: look l uses seed indices < min + l of each
member, and is made when every configuration still open after look l - 1 has min + l values,
so the live searcher (every round) and the report (from trials.parquet) agree. Pruned
configurations (stopped by a scheduler) are out of the leader's race, out of the axis cells,
and never grounds to continue.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from abl.errors import AblError
from abl.results._looks import (
    Contrast,
    Verdict,
    axes_of,
    axis_tests,
    candidates,
    config_label,
    flipped,
    futility,
    grounds,
    leader_of,
    mirror,
    pair,
    update,
)
from abl.results._pairs import holm
from abl.results._pooled import Pool

FUTILITY = 0.1  # default SeedPlan.futility: the conditional power below which a comparison stops


@dataclass(frozen=True)
class SeedPlan:
    """How many seeds a configuration may get, and at what level comparisons are decided."""

    min: int  # seeds every configuration gets (>= 2: a paired t-test needs two)
    max: int  # seeds no configuration goes beyond (>= min)
    alpha: float = 0.05  # family-wise, after Holm's correction
    margin: float | None = None  # equivalence margin in the metric's units (None: no ties)
    futility: float | None = FUTILITY  # stop a comparison below this conditional power
    pooled: bool = True  # one seed variance for every comparison (abl.results._pooled); False:
    # each comparison's own paired differences (the ANOVA assumption of equal seed SD dropped)

    def __post_init__(self) -> None:
        if not (isinstance(self.min, int) and self.min >= 2):
            raise AblError(f"repeats.min must be an integer >= 2; got {self.min!r}")
        if not (isinstance(self.max, int) and self.max >= self.min):
            raise AblError(f"repeats.max must be an integer >= min ({self.min}); got {self.max!r}")
        if not 0 < self.alpha < 1:
            raise AblError(f"repeats.alpha must lie in (0, 1); got {self.alpha!r}")
        if self.margin is not None and not self.margin > 0:
            raise AblError(f"repeats.margin must be > 0 (metric units); got {self.margin!r}")
        if self.futility is not None and not 0 <= self.futility < 1:
            raise AblError(f"repeats.futility must lie in [0, 1) or be null; got {self.futility!r}")

    @property
    def looks(self) -> int:
        """The planned looks: look l (0-based) is after min + l seeds."""
        return self.max - self.min + 1

    @property
    def fractions(self) -> tuple[float, ...]:
        """Information fraction of each look, (min + l) / max."""
        return tuple((self.min + look) / self.max for look in range(self.looks))


@dataclass(frozen=True)
class Comparison:
    """One comparison at the last look made. Leader comparisons: ``a`` is the leader."""

    axis: str | None  # None: a configuration against the leader
    a: str  # an axis value (axis comparisons) or a configuration label "k=v, k=v"
    b: str
    n: int  # matched units (cells x seeds) at its last look
    diff: float  # mean of a - b in metric units (NaN if nothing matched)
    p: float  # the sequential p-value, before Holm
    p_holm: float
    verdict: str  # a Verdict: "a", "b", "equivalent", "futile", "open"
    look: int | None  # the look at which it was decided or stopped (None: open)
    members: frozenset[int]  # indices of the configurations that take part
    power: float | None = None  # conditional power of a decision by max seeds, at its last
    # look (None: not assessed: futility off, the last look, or not updated at that look)


@dataclass(frozen=True)
class ConfigStatus:
    """One configuration: its seeds, whether it wants more, and why (one phrase)."""

    index: int
    seeds: int  # seeds with a value
    open: bool  # takes part in the next look: wants seeds up to Assessment.need
    why: str  # e.g. "worse than the leader (x=1, y=2) at 3 seeds", "reached max (10 seeds)"


@dataclass(frozen=True)
class Assessment:
    """Where an adaptive-seed sweep stands (see :func:`assess`)."""

    leader: int | None
    comparisons: list[Comparison]
    configs: list[ConfigStatus]
    looks: int  # looks made so far
    done: bool  # no configuration is open (the sweep may stop)
    need: int = 0  # seeds each open configuration needs for the next look (min + looks)
    pairs: list[Comparison] = field(default_factory=list)  # every pair of configurations
    # in Holm's family (``a`` the lower index), the leader's included: what the design says of
    # a pair that it does not report, e.g. to compare two designs with different leaders


def procedure(plan: SeedPlan) -> str:
    """One sentence naming the procedure, for the report and the docs."""
    ties = (
        f"; a tie is declared when the repeated {1 - plan.alpha:g}/m confidence interval lies "
        f"within ±{plan.margin:g}"
        if plan.margin is not None
        else ""
    )
    futile = (
        f"; a comparison stops as not distinguishable (non-binding futility) once its "
        f"conditional power of a decision by {plan.max} seeds, under the current trend, "
        f"falls below {plan.futility:g}"
        if plan.futility
        else ""
    )
    pooled = (
        " on one seed variance (the two-way residual configuration x seed index)"
        if plan.pooled
        else ""
    )
    return (
        f"Group-sequential paired t-tests with up to {plan.looks} looks ({plan.min} to "
        f"{plan.max} seeds){pooled}, an O'Brien-Fleming-type constant boundary on the B-value "
        "scale "
        "(its null distribution simulated for t-tests) "
        "and Holm's step-down over every pair of configurations and every axis pair "
        f"(family-wise alpha={plan.alpha:g}){ties}{futile}."
    ).replace(f"{1 - plan.alpha:g}/m", f"1-{plan.alpha:g}/m")


def assess(
    configs: Sequence[Mapping[str, Any]],
    values: Sequence[Mapping[int, float]],
    plan: SeedPlan,
    mode: str,
    *,
    pruned: Collection[int] = (),
) -> Assessment:
    """Replay the looks that the data allow and say which configurations want more seeds.

    ``configs[i]`` are configuration i's swept parameters (seed excluded); ``values[i]`` maps
    a seed *index* (0..max-1) to its final metric; ``pruned`` were stopped by a scheduler.
    Deterministic: the same data give the same answer, live or afterwards.
    """
    if mode not in ("min", "max"):
        raise AblError(f"mode must be one of min, max; got {mode!r}")
    if len(configs) != len(values):
        raise AblError(
            f"configs and values must have one entry each; got {len(configs)} and {len(values)}"
        )
    k, pruned = len(configs), frozenset(int(i) for i in pruned)
    y = np.full((k, plan.max), np.nan)
    for i, vals in enumerate(values):
        for s, v in vals.items():
            if 0 <= int(s) < plan.max and v is not None and math.isfinite(v):
                y[i, int(s)] = float(v)
    count = np.sum(~np.isnan(y), axis=1)
    axes = axes_of(configs)
    names = [config_label(c, axes) for c in configs]
    pairs = {
        (i, j): Contrast(None, names[i], names[j], np.array([i]), np.array([j]))
        for i, j in combinations(range(k), 2)
    }
    tests = [*pairs.values(), *axis_tests(configs, axes, pruned)]
    for t in tests[len(pairs) :]:
        if t.ea.size == 1:  # one cell: the same hypothesis as a pair of configurations
            t.same = pair(pairs, int(t.ea[0]), int(t.eb[0]))
    family = [t for t in tests if t.same is None]  # each hypothesis once in Holm
    live = [i for i in range(k) if i not in pruned]
    sign = 1.0 if mode == "min" else -1.0  # "a better" when sign * diff < 0
    level = plan.alpha / max(len(family), 1)  # of the repeated confidence intervals, for ties
    opened: set[int] = set(live)
    leader, looks = None, 0
    pool = Pool.of(y, plan.min, pruned) if plan.pooled else None
    for look in range(plan.looks):
        need = plan.min + look
        if any(count[i] < need for i in opened):
            break
        update(family, y[:, :need], count, need, plan, level, sign, look, pool)
        mirror(tests)
        leader = leader_of(y[:, :need], live, pairs, sign)
        futility(family, candidates(leader, pairs, tests, k, pruned), plan, look)
        mirror(tests)
        looks = look + 1
        going = grounds(leader, pairs, tests, k, pruned)
        opened = {i for i in live if min(count[i], need) < plan.max and i in going}
        if looks == plan.looks:  # the last look: a configuration that the leader's change
            opened = set()  # reopened at fewer seeds has no look left to take part in
        if not opened:
            break
    need = plan.min + looks
    statuses = [
        _status(i, int(count[i]), i in opened, leader, pairs, pruned, plan, names, looks)
        for i in range(k)
    ]
    comparisons, every = _report(tests, family, pairs, leader, k, looks)
    done = not any(s.open for s in statuses)
    return Assessment(leader, comparisons, statuses, looks, done, need, every)


def _status(
    i: int,
    seeds: int,
    is_open: bool,
    leader: int | None,
    pairs: dict[tuple[int, int], Contrast],
    pruned: frozenset[int],
    plan: SeedPlan,
    names: list[str],
    looks: int,
) -> ConfigStatus:
    """The one phrase the report prints for a configuration."""
    if i in pruned:
        return ConfigStatus(i, seeds, False, "pruned")
    if looks == 0:
        return ConfigStatus(i, seeds, seeds < plan.min, f"needs {plan.min} seeds")
    if i == leader:
        return ConfigStatus(i, seeds, is_open, "leader")
    t = pair(pairs, i, leader) if leader is not None else None
    if is_open:
        why = (
            "undecided against the leader"
            if t is not None and t.verdict is Verdict.OPEN
            else "undecided on an axis"
        )
        return ConfigStatus(i, seeds, True, why)
    if t is not None and t.verdict is not Verdict.OPEN and t.look is not None:
        at = plan.min + t.look
        if t.verdict is Verdict.FUTILE:
            return ConfigStatus(
                i,
                seeds,
                False,
                f"not distinguishable from the leader ({names[leader]}); stopped at {at} seeds: "
                f"a decision by max seeds was unlikely (conditional power {t.power or 0.0:.0%})",
            )
        if t.verdict is Verdict.EQUIVALENT:
            what = "equivalent to"
        else:
            i_better = (t.verdict is Verdict.A) == (t.ea[0] == i)
            what = "better than" if i_better else "worse than"
        return ConfigStatus(i, seeds, False, f"{what} the leader ({names[leader]}) at {at} seeds")
    if seeds >= plan.max:
        return ConfigStatus(i, seeds, False, f"reached max ({plan.max} seeds)")
    return ConfigStatus(i, seeds, False, "every comparison decided")


def _report(
    tests: list[Contrast],
    family: list[Contrast],
    pairs: dict[tuple[int, int], Contrast],
    leader: int | None,
    k: int,
    looks: int,
) -> tuple[list[Comparison], list[Comparison]]:
    """The leader's comparisons (``a`` = the leader) and the axis comparisons; every pair of
    configurations."""
    if looks == 0:
        return [], []
    adjusted = dict(zip(map(id, family), holm([t.p for t in family]), strict=True))
    adjusted.update({id(t): adjusted[id(t.same)] for t in tests if t.same is not None})
    out = []
    if leader is not None:
        for j in range(k):
            if j != leader:
                t = pair(pairs, leader, j)
                flip = t.ea[0] != leader
                verdict = flipped(t.verdict) if flip else t.verdict
                a, b = (t.b, t.a) if flip else (t.a, t.b)
                diff = -t.diff if flip else t.diff
                out.append(_comparison(t, a, b, diff, verdict, adjusted))
    out += [
        _comparison(t, t.a, t.b, t.diff, t.verdict, adjusted) for t in tests if t.axis is not None
    ]
    every = [_comparison(t, t.a, t.b, t.diff, t.verdict, adjusted) for t in pairs.values()]
    return out, every


def _comparison(
    t: Contrast, a: str, b: str, diff: float, verdict: Verdict, adjusted: dict[int, float]
) -> Comparison:
    return Comparison(
        t.axis,
        a,
        b,
        t.n,
        diff,
        t.p,
        float(adjusted[id(t)]),
        verdict.value,
        t.look,
        t.members,
        t.power,
    )
