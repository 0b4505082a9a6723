"""Adaptive seeds: add seeds only where a comparison is still undecided, without inflating
false positives (issue 18; SCIENCE.md point 6).

A space's ``repeats: {min: 2, max: 10, alpha: 0.05, margin: 0.01}`` becomes a
:class:`SeedPlan`. Every configuration gets ``min`` seeds; then, round by round, only the
configurations that take part in an undecided comparison get one more, until every comparison
is decided or they reach ``max``::

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
decided which looks were seen. Holm's step-down over the family (group-sequential Holm: Ye, Li, Jiang, Zhang & Zhou 2013;
Tamhane, Mehta & Liu 2010) decides: p-values that only shrink keep Holm's adjusted ones
shrinking, so a decision, once made, is kept (it is frozen at its look). A tie is a decision
too when a margin is given: the repeated confidence interval (Jennison & Turnbull 1989) of
level 1 - alpha/m on the same boundary lies inside (-margin, margin).

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

**Replay.** :func:`assess` uses the data alone: look l uses seed indices < min + l of each
member, and is made when every configuration still open after look l - 1 has min + l values,
so the live searcher (every round) and the report (from trials.parquet) agree. Pruned
configurations (stopped by a scheduler) are out of the leader's race, out of the axis cells,
and never grounds to continue.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import combinations
from typing import Any

import numpy as np
from scipy import special

from abl.errors import AblError
from abl.results._boundary import t_critical, t_tail
from abl.results._design import label, natural_key
from abl.results._pairs import holm


@dataclass(frozen=True)
class SeedPlan:
    """How many seeds a configuration may get, and at what level comparisons are decided."""

    min: int  # seeds every configuration gets (>= 2: a paired t-test needs two)
    max: int  # seeds no configuration goes beyond (>= min)
    alpha: float = 0.05  # family-wise, after Holm's correction
    margin: float | None = None  # equivalence margin in the metric's units (None: no ties)

    def __post_init__(self) -> None:
        if not (isinstance(self.min, int) and self.min >= 2):
            raise AblError(f"repeats.min must be an integer >= 2; got {self.min!r}")
        if not (isinstance(self.max, int) and self.max >= self.min):
            raise AblError(f"repeats.max must be an integer >= min ({self.min}); got {self.max!r}")
        if not 0 < self.alpha < 1:
            raise AblError(f"repeats.alpha must lie in (0, 1); got {self.alpha!r}")
        if self.margin is not None and not self.margin > 0:
            raise AblError(f"repeats.margin must be > 0 (metric units); got {self.margin!r}")

    @property
    def looks(self) -> int:
        """The planned looks: look l (0-based) is after min + l seeds."""
        return self.max - self.min + 1

    @property
    def fractions(self) -> tuple[float, ...]:
        """Information fraction of each look, (min + l) / max."""
        return tuple((self.min + look) / self.max for look in range(self.looks))


class Verdict(str, Enum):
    """What a comparison concluded (the value is what :class:`Comparison` carries)."""

    A = "a"  # a is better
    B = "b"  # b is better
    EQUIVALENT = "equivalent"  # within ±margin
    OPEN = "open"  # not decided yet


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
    verdict: str  # a Verdict: "a", "b", "equivalent", "open"
    look: int | None  # the look at which it was decided (None: open)
    members: frozenset[int]  # indices of the configurations that take part


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


def procedure(plan: SeedPlan) -> str:
    """One sentence naming the procedure, for the report and the docs."""
    ties = (
        f"; a tie is declared when the repeated {1 - plan.alpha:g}/m confidence interval lies "
        f"within ±{plan.margin:g}"
        if plan.margin is not None
        else ""
    )
    return (
        f"Group-sequential paired t-tests with up to {plan.looks} looks ({plan.min} to "
        f"{plan.max} seeds), an O'Brien-Fleming-type constant boundary on the B-value scale "
        "(its null distribution simulated for t-tests) "
        "and Holm's step-down over every pair of configurations and every axis pair "
        f"(family-wise alpha={plan.alpha:g}){ties}."
    ).replace(f"{1 - plan.alpha:g}/m", f"1-{plan.alpha:g}/m")


@dataclass
class _Test:
    """One comparison's running state: elementary config pairs (a_i, b_i) whose differences
    are its units."""

    axis: str | None
    a: str
    b: str
    ea: np.ndarray
    eb: np.ndarray
    stat: float = 0.0  # largest |B| seen
    p: float = 1.0
    n: int = 0
    diff: float = math.nan
    verdict: Verdict = Verdict.OPEN
    look: int | None = None
    members: frozenset[int] = frozenset()
    same: _Test | None = None  # an axis pair with one cell: that pair of configurations

    def __post_init__(self) -> None:
        self.members = frozenset(int(i) for i in (*self.ea, *self.eb))


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
    axes = _axes(configs)
    names = [_config_label(c, axes) for c in configs]
    pairs = {
        (i, j): _Test(None, names[i], names[j], np.array([i]), np.array([j]))
        for i, j in combinations(range(k), 2)
    }
    tests = [*pairs.values(), *_axis_tests(configs, axes, pruned)]
    for t in tests[len(pairs) :]:
        if t.ea.size == 1:  # one cell: the same hypothesis as a pair of configurations
            t.same = _pair(pairs, int(t.ea[0]), int(t.eb[0]))
    family = [t for t in tests if t.same is None]  # each hypothesis once in Holm
    live = [i for i in range(k) if i not in pruned]
    sign = 1.0 if mode == "min" else -1.0  # "a better" when sign * diff < 0
    level = plan.alpha / max(len(family), 1)  # of the repeated confidence intervals, for ties
    opened: set[int] = set(live)
    leader, looks = None, 0
    for look in range(plan.looks):
        need = plan.min + look
        if any(count[i] < need for i in opened):
            break
        _update(family, y[:, :need], count, need, plan, level, sign, look)
        _mirror(tests)
        leader = _leader(y[:, :need], live, pairs, sign)
        looks = look + 1
        grounds = _grounds(leader, pairs, tests, k, pruned)
        opened = {i for i in live if min(count[i], need) < plan.max and i in grounds}
        if looks == plan.looks:  # the last look: a configuration that the leader's change
            opened = set()  # reopened at fewer seeds has no look left to take part in
        if not opened:
            break
    need = plan.min + looks
    statuses = [
        _status(i, int(count[i]), i in opened, leader, pairs, pruned, plan, names, looks)
        for i in range(k)
    ]
    comparisons = _report(tests, family, pairs, leader, k, looks)
    return Assessment(leader, comparisons, statuses, looks, not any(s.open for s in statuses), need)


def _axes(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Keys whose value varies among the configurations, in first-seen order."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    return [key for key in keys if len({label(c.get(key)) for c in configs}) > 1]


def _config_label(config: Mapping[str, Any], axes: list[str]) -> str:
    keys = axes or list(config)
    return ", ".join(f"{key}={label(config.get(key))}" for key in keys)


def _axis_tests(
    configs: Sequence[Mapping[str, Any]], axes: list[str], pruned: frozenset[int]
) -> list[_Test]:
    """Every pair of values of every axis, over the cells (other axes' values) where both ran
    unpruned; one elementary pair per matched cell."""
    out = []
    for axis in axes:
        others = [o for o in axes if o != axis]
        by_value: dict[str, dict[tuple[str, ...], int]] = {}
        for i, c in enumerate(configs):
            if i not in pruned:
                cell = tuple(label(c.get(o)) for o in others)
                by_value.setdefault(label(c.get(axis)), {}).setdefault(cell, i)
        values = sorted(by_value, key=lambda v: natural_key(_number(v)))
        for va, vb in combinations(values, 2):
            common = [c for c in by_value[va] if c in by_value[vb]]
            if common:
                ea = np.array([by_value[va][c] for c in common])
                eb = np.array([by_value[vb][c] for c in common])
                out.append(_Test(axis, va, vb, ea, eb))
    return out


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _update(
    tests: list[_Test],
    y: np.ndarray,
    count: np.ndarray,
    need: int,
    plan: SeedPlan,
    level: float,
    sign: float,
    look: int,
) -> None:
    """One look: every undecided test whose members all have ``need`` values gets its paired
    t-test, B-value and sequential p (the null tail of a test over c cells per seed:
    :func:`abl.results._boundary.t_tail`); then Holm over the family decides."""
    ready = frozenset(np.flatnonzero(count >= need).tolist())
    todo = [t for t in tests if t.verdict is Verdict.OPEN and t.members <= ready]
    if todo:
        ea = np.concatenate([t.ea for t in todo])
        eb = np.concatenate([t.eb for t in todo])
        d = (y[ea] - y[eb]).ravel()  # each test's units contiguous, cell by cell
        sizes = [t.ea.size * need for t in todo]
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        ok = ~np.isnan(d)
        n = np.add.reduceat(ok.astype(float), starts)
        d0 = np.where(ok, d, 0.0)
        mean = np.add.reduceat(d0, starts) / np.maximum(n, 1)
        dev = np.where(ok, d - np.repeat(mean, sizes), 0.0)
        var = np.add.reduceat(dev**2, starts) / np.maximum(n - 1, 1)
        se = np.sqrt(var / np.maximum(n, 1))
        z, spread = _z(mean, se, n)
        frac = plan.fractions[look]
        seen = n >= 2
        stat = np.where(seen, np.maximum([t.stat for t in todo], np.abs(z) * math.sqrt(frac)), 0)
        cells = np.array([t.ea.size for t in todo])
        p = np.ones(len(todo))
        for c in np.unique(cells):
            p[cells == c] = t_tail(plan.min, plan.max, int(c))(stat[cells == c])
        for i in np.flatnonzero(seen):
            t = todo[i]
            t.n, t.diff, t.stat, t.p = int(n[i]), float(mean[i]), float(stat[i]), float(p[i])
        if plan.margin is not None:
            bound = {c: t_critical(plan.min, plan.max, int(c), level) for c in np.unique(cells)}
            z_crit = np.array([bound[c] for c in cells]) / math.sqrt(frac)
            _equivalence(todo, n, mean, se, spread, z_crit, plan, look)
    adjusted = holm([t.p for t in tests])
    for t, h in zip(tests, adjusted, strict=True):
        if t.verdict is Verdict.OPEN and h < plan.alpha and t.n >= 2:
            t.verdict = Verdict.A if sign * t.diff < 0 else Verdict.B
            t.look = look


def _z(mean: np.ndarray, se: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paired t-test's two-sided p as a z of the same sign; a difference without spread
    is z = ±inf (0 when there is no difference either)."""
    spread = se > 1e-12 * np.maximum(np.abs(mean), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(spread, mean / np.where(spread, se, 1.0), 0.0)
        p = 2 * special.stdtr(np.maximum(n - 1, 1), -np.abs(t))
        z = np.where(spread, -special.ndtri(p / 2), np.where(mean != 0, np.inf, 0.0))
    return np.sign(mean) * np.abs(z), spread


def _equivalence(
    todo: list[_Test],
    n: np.ndarray,
    mean: np.ndarray,
    se: np.ndarray,
    spread: np.ndarray,
    z_crit: np.ndarray,
    plan: SeedPlan,
    look: int,
) -> None:
    """A tie where the repeated confidence interval, mean ± t_crit se, lies within ±margin;
    t_crit has the tail of the boundary's z at this look."""
    t_crit = special.stdtrit(np.maximum(n - 1, 1), special.ndtr(z_crit))
    half = np.where(spread, t_crit * se, 0.0)
    inside = (np.abs(mean) + half < plan.margin) & (n >= 2)
    for i, t in enumerate(todo):
        if inside[i]:
            t.verdict, t.look = Verdict.EQUIVALENT, look


def _leader(
    y: np.ndarray, live: list[int], pairs: dict[tuple[int, int], _Test], sign: float
) -> int | None:
    """The best mean among live configurations that no decision has put below another."""
    worse = {
        j if t.verdict is Verdict.A else i
        for (i, j), t in pairs.items()
        if t.verdict in (Verdict.A, Verdict.B)
    }
    candidates = [i for i in live if i not in worse and not np.all(np.isnan(y[i]))] or [
        i for i in live if not np.all(np.isnan(y[i]))
    ]
    if not candidates:
        return None
    means = [sign * float(np.nanmean(y[i])) for i in candidates]
    return candidates[int(np.argmin(means))]


def _pair(pairs: dict[tuple[int, int], _Test], i: int, j: int) -> _Test:
    return pairs[(min(i, j), max(i, j))]


def _grounds(
    leader: int | None,
    pairs: dict[tuple[int, int], _Test],
    tests: list[_Test],
    k: int,
    pruned: frozenset[int],
) -> set[int]:
    """The configurations that take part in an open comparison that is grounds to continue:
    the leader's open pairs with unpruned configurations, and the open axis pairs."""
    out: set[int] = set()
    if leader is not None:
        for j in range(k):
            if j != leader and j not in pruned and _pair(pairs, leader, j).verdict is Verdict.OPEN:
                out |= {j, leader}
    for t in tests:
        if t.axis is not None and t.verdict is Verdict.OPEN:
            out |= t.members
    return out


def _status(
    i: int,
    seeds: int,
    is_open: bool,
    leader: int | None,
    pairs: dict[tuple[int, int], _Test],
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
    t = _pair(pairs, i, leader) if leader is not None else None
    if is_open:
        why = (
            "undecided against the leader"
            if t is not None and t.verdict is Verdict.OPEN
            else "undecided on an axis"
        )
        return ConfigStatus(i, seeds, True, why)
    if t is not None and t.verdict is not Verdict.OPEN and t.look is not None:
        at = plan.min + t.look
        if t.verdict is Verdict.EQUIVALENT:
            what = "equivalent to"
        else:
            i_better = (t.verdict is Verdict.A) == (t.ea[0] == i)
            what = "better than" if i_better else "worse than"
        return ConfigStatus(i, seeds, False, f"{what} the leader ({names[leader]}) at {at} seeds")
    if seeds >= plan.max:
        return ConfigStatus(i, seeds, False, f"reached max ({plan.max} seeds)")
    return ConfigStatus(i, seeds, False, "every comparison decided")


def _mirror(tests: list[_Test]) -> None:
    """Give each one-cell axis pair the state of the pair of configurations it is."""
    for t in tests:
        if t.same is not None:
            flip = int(t.same.ea[0]) != int(t.ea[0])
            t.stat, t.p, t.n, t.look = t.same.stat, t.same.p, t.same.n, t.same.look
            t.diff = -t.same.diff if flip else t.same.diff
            t.verdict = _flipped(t.same.verdict) if flip else t.same.verdict


def _flipped(v: Verdict) -> Verdict:
    return {Verdict.A: Verdict.B, Verdict.B: Verdict.A}.get(v, v)


def _report(
    tests: list[_Test],
    family: list[_Test],
    pairs: dict[tuple[int, int], _Test],
    leader: int | None,
    k: int,
    looks: int,
) -> list[Comparison]:
    """The leader's comparisons (``a`` = the leader) and the axis comparisons."""
    if looks == 0:
        return []
    adjusted = dict(zip(map(id, family), holm([t.p for t in family]), strict=True))
    adjusted.update({id(t): adjusted[id(t.same)] for t in tests if t.same is not None})
    out = []
    if leader is not None:
        for j in range(k):
            if j != leader:
                t = _pair(pairs, leader, j)
                flip = t.ea[0] != leader
                verdict = _flipped(t.verdict) if flip else t.verdict
                a, b = (t.b, t.a) if flip else (t.a, t.b)
                diff = -t.diff if flip else t.diff
                out.append(_comparison(t, a, b, diff, verdict, adjusted))
    out += [
        _comparison(t, t.a, t.b, t.diff, t.verdict, adjusted) for t in tests if t.axis is not None
    ]
    return out


def _comparison(
    t: _Test, a: str, b: str, diff: float, verdict: Verdict, adjusted: dict[int, float]
) -> Comparison:
    return Comparison(
        t.axis, a, b, t.n, diff, t.p, float(adjusted[id(t)]), verdict.value, t.look, t.members
    )
