"""One look of :func:`abl.results.sequential.assess`: the comparisons' running state, their
paired t-tests and sequential p-values, Holm's decisions, the leader and who continues."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from abl.results._boundary import t_critical, t_tail
from abl.results._design import label, natural_key
from abl.results._pairs import holm
from abl.results._pooled import Pool, pooled_variance, residual_df

if TYPE_CHECKING:
    from abl.results.sequential import SeedPlan


class Verdict(str, Enum):
    """What a comparison concluded (the value is what :class:`Comparison` carries)."""

    A = "a"  # a is better
    B = "b"  # b is better
    EQUIVALENT = "equivalent"  # within ±margin
    FUTILE = "futile"  # stopped: a decision by max seeds was unlikely (conditional power)
    OPEN = "open"  # not decided yet


@dataclass
class Contrast:
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
    same: Contrast | None = None  # an axis pair with one cell: that pair of configurations
    t: float = 0.0  # the paired t statistic at its last update (±inf: no spread)
    se: float = math.nan  # its standard error of the mean difference
    updated: int | None = None  # the look of its last update
    power: float | None = None  # conditional power at its last update (see :func:`futility`)
    df: float = 1.0  # degrees of freedom of its t statistic at its last update
    others: int | None = None  # pooled variance: the pool's configurations outside its
    # members (abl.results._pooled); None: its own units' variance (a member lacks a value)

    def __post_init__(self) -> None:
        self.members = frozenset(int(i) for i in (*self.ea, *self.eb))


def axes_of(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Keys whose value varies among the configurations, in first-seen order."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    return [key for key in keys if len({label(c.get(key)) for c in configs}) > 1]


def config_label(config: Mapping[str, Any], axes: list[str]) -> str:
    keys = axes or list(config)
    return ", ".join(f"{key}={label(config.get(key))}" for key in keys)


def axis_tests(
    configs: Sequence[Mapping[str, Any]], axes: list[str], pruned: frozenset[int]
) -> list[Contrast]:
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
                out.append(Contrast(axis, va, vb, ea, eb))
    return out


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def update(
    tests: list[Contrast],
    y: np.ndarray,
    count: np.ndarray,
    need: int,
    plan: SeedPlan,
    level: float,
    sign: float,
    look: int,
    pool: Pool | None = None,
) -> None:
    """One look: every undecided test whose members all have ``need`` values gets its paired
    t-test, B-value and sequential p (the null tail of a test over c cells per seed and the
    pool's other configurations: :func:`abl.results._boundary.t_tail`); then Holm over the
    family decides. With a ``pool``, a test whose members are in it with every value up to
    ``need`` takes the pooled residual variance (:mod:`abl.results._pooled`)."""
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
        df = np.maximum(n - 1, 1)
        others = np.full(len(todo), -1)  # -1: its own units' variance
        if pool is not None:
            _pool(todo, y, need, pool, var, df, others)
        se = np.sqrt(var / np.maximum(n, 1))
        z, spread = _z(mean, se, df)
        frac = plan.fractions[look]
        seen = n >= 2
        stat = np.where(seen, np.maximum([t.stat for t in todo], np.abs(z) * math.sqrt(frac)), 0)
        cells = np.array([t.ea.size for t in todo])
        keys = list(zip(cells.tolist(), others.tolist(), strict=True))
        p = np.ones(len(todo))
        for c, o in set(keys):
            where = np.array([key == (c, o) for key in keys])
            p[where] = t_tail(plan.min, plan.max, c, None if o < 0 else o)(stat[where])
        with np.errstate(divide="ignore", invalid="ignore"):
            tstat = np.where(spread, mean / np.where(spread, se, 1.0), np.sign(mean) * np.inf)
        for i in np.flatnonzero(seen):
            t = todo[i]
            t.n, t.diff, t.stat, t.p = int(n[i]), float(mean[i]), float(stat[i]), float(p[i])
            t.t, t.se, t.updated = float(np.nan_to_num(tstat[i])), float(se[i]), look
            t.df, t.others = float(df[i]), None if others[i] < 0 else int(others[i])
        if plan.margin is not None:
            bound = {
                (c, o): t_critical(plan.min, plan.max, c, level, None if o < 0 else o)
                for c, o in set(keys)
            }
            z_crit = np.array([bound[key] for key in keys]) / math.sqrt(frac)
            _equivalence(todo, df, n, mean, se, spread, z_crit, plan, look)
    adjusted = holm([t.p for t in tests])
    for t, h in zip(tests, adjusted, strict=True):
        if t.verdict is Verdict.OPEN and h < plan.alpha and t.n >= 2:
            t.verdict = Verdict.A if sign * t.diff < 0 else Verdict.B
            t.look = look


def _pool(
    todo: list[Contrast],
    y: np.ndarray,
    need: int,
    pool: Pool,
    var: np.ndarray,
    df: np.ndarray,
    others: np.ndarray,
) -> None:
    """Overwrite, for each test the pool covers, the variance of one unit (a paired
    difference: 2 sigma^2), its df and its others, in place."""
    covered: dict[int, list[int]] = {}
    for i, t in enumerate(todo):
        rows = np.concatenate([t.ea, t.eb])
        if t.members <= pool.rows and np.all(np.isfinite(y[rows, :need])):
            covered.setdefault(rows.size, []).append(i)
    for which in covered.values():
        rows = [np.concatenate([todo[i].ea, todo[i].eb]) for i in which]
        sigma2, dfs, outside = pooled_variance(pool, y, rows, need)
        var[which], df[which], others[which] = 2 * sigma2, dfs, outside


def _z(mean: np.ndarray, se: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paired t-test's two-sided p as a z of the same sign; a difference without spread
    is z = ±inf (0 when there is no difference either)."""
    spread = se > 1e-12 * np.maximum(np.abs(mean), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(spread, mean / np.where(spread, se, 1.0), 0.0)
        p = 2 * special.stdtr(df, -np.abs(t))
        z = np.where(spread, -special.ndtri(p / 2), np.where(mean != 0, np.inf, 0.0))
    return np.sign(mean) * np.abs(z), spread


def _equivalence(
    todo: list[Contrast],
    df: np.ndarray,
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
    t_crit = special.stdtrit(df, special.ndtr(z_crit))
    half = np.where(spread, t_crit * se, 0.0)
    inside = (np.abs(mean) + half < plan.margin) & (n >= 2)
    for i, t in enumerate(todo):
        if inside[i]:
            t.verdict, t.look = Verdict.EQUIVALENT, look


def futility(family: list[Contrast], candidates: list[Contrast], plan: SeedPlan, look: int) -> None:
    """Conditional power of every open test updated at this look; a candidate (grounds to
    continue) below ``plan.futility`` stops as :attr:`Verdict.FUTILE`, frozen at this look.

    Power is P(a decision by ``max`` seeds | the data so far, the current trend): the trend is
    the observed mean difference with the observed SD per unit (plug-in), so that the t
    statistic at ``max`` seeds is about N(t sqrt(N / n), 1 - n / N) (Lachin 2005). It is
    rejected when it crosses the final look's boundary, the lowest of all looks on this
    scale, at the Holm level of the first open hypothesis, alpha / (hypotheses not rejected);
    the continuous-path crossing probability (reflection) bounds every look's crossing from
    above, and that level is the most lenient one an open test faces now, so the power is
    over- rather than under-stated. With a margin, the probability that the final repeated
    interval lies inside it is added (a tie is a decision too).
    """
    if plan.futility is None or look >= plan.looks - 1:
        return
    rejected = sum(t.verdict in (Verdict.A, Verdict.B) for t in family)
    holm_level = plan.alpha / max(len(family) - rejected, 1)
    tie_level = plan.alpha / max(len(family), 1)
    stop = {id(t) for t in candidates}
    for t in family:
        if t.verdict is not Verdict.OPEN or t.updated != look or t.n < 2:
            continue
        cells = int(t.ea.size)
        final = cells * plan.max  # units at max seeds
        info = min(t.n / final, 1.0)
        if info >= 1.0:
            continue
        df_final = _final_df(t, plan)
        bound = t_critical(plan.min, plan.max, cells, holm_level, t.others)
        t_star = float(special.stdtrit(df_final, special.ndtr(bound)))
        x, drift, rest = abs(t.t) * math.sqrt(info), abs(t.t) / math.sqrt(info), 1.0 - info
        power = _crossing(x, drift, rest, t_star) + _crossing(-x, -drift, rest, t_star)
        if plan.margin is not None and math.isfinite(t.se):
            tie = t_critical(plan.min, plan.max, cells, tie_level, t.others)
            t_tie = float(special.stdtrit(df_final, special.ndtr(tie)))
            sd = t.se * math.sqrt(t.n)  # per unit
            room = plan.margin - t_tie * sd / math.sqrt(final)
            spread = sd * math.sqrt(final - t.n) / final  # SD of the mean at max seeds
            if room > 0:
                power += (
                    float(
                        special.ndtr((room - t.diff) / spread)
                        - special.ndtr((-room - t.diff) / spread)
                    )
                    if spread > 0
                    else float(abs(t.diff) < room)
                )
        t.power = min(power, 1.0)
        if id(t) in stop and t.power < plan.futility:
            t.verdict, t.look = Verdict.FUTILE, look


def _final_df(t: Contrast, plan: SeedPlan) -> float:
    """Degrees of freedom of the test's t statistic at ``max`` seeds."""
    if t.others is None:
        return float(t.ea.size * plan.max - 1)
    return float(residual_df(t.others, 2 * int(t.ea.size), plan.min, plan.max))


def _crossing(x: float, drift: float, duration: float, bound: float) -> float:
    """P(x + W(s) + drift s >= bound for some s <= duration), W standard Brownian motion."""
    if x >= bound:
        return 1.0
    root = math.sqrt(duration)
    direct = float(special.ndtr((x + drift * duration - bound) / root))
    log_mirror = 2 * drift * (bound - x) + float(
        special.log_ndtr((x - bound - drift * duration) / root)
    )
    return min(1.0, direct + math.exp(min(log_mirror, 0.0)))


def candidates(
    leader: int | None,
    pairs: dict[tuple[int, int], Contrast],
    tests: list[Contrast],
    k: int,
    pruned: frozenset[int],
) -> list[Contrast]:
    """The family's tests that are grounds to continue (see :func:`grounds`): the leader's
    pairs with unpruned configurations and the axis pairs (a one-cell one as its pair)."""
    out = []
    if leader is not None:
        out = [pair(pairs, leader, j) for j in range(k) if j != leader and j not in pruned]
    out += [t if t.same is None else t.same for t in tests if t.axis is not None]
    return out


def leader_of(
    y: np.ndarray, live: list[int], pairs: dict[tuple[int, int], Contrast], sign: float
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


def pair(pairs: dict[tuple[int, int], Contrast], i: int, j: int) -> Contrast:
    return pairs[(min(i, j), max(i, j))]


def grounds(
    leader: int | None,
    pairs: dict[tuple[int, int], Contrast],
    tests: list[Contrast],
    k: int,
    pruned: frozenset[int],
) -> set[int]:
    """The configurations that take part in an open comparison that is grounds to continue:
    the leader's open pairs with unpruned configurations, and the open axis pairs."""
    out: set[int] = set()
    if leader is not None:
        for j in range(k):
            if j != leader and j not in pruned and pair(pairs, leader, j).verdict is Verdict.OPEN:
                out |= {j, leader}
    for t in tests:
        if t.axis is not None and t.verdict is Verdict.OPEN:
            out |= t.members
    return out


def mirror(tests: list[Contrast]) -> None:
    """Give each one-cell axis pair the state of the pair of configurations it is."""
    for t in tests:
        if t.same is not None:
            flip = int(t.same.ea[0]) != int(t.ea[0])
            t.stat, t.p, t.n, t.look = t.same.stat, t.same.p, t.same.n, t.same.look
            t.power, t.updated = t.same.power, t.same.updated
            t.diff = -t.same.diff if flip else t.same.diff
            t.verdict = flipped(t.same.verdict) if flip else t.same.verdict


def flipped(v: Verdict) -> Verdict:
    return {Verdict.A: Verdict.B, Verdict.B: Verdict.A}.get(v, v)
