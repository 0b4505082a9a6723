"""Per-axis comparisons: is value A of an ablation axis better than value B, beyond seed noise?

For every ablation axis (a grid parameter with two or more values among the ranked trials),
every pair of its values is compared *matched on the other axes*: a cell is one setting of every
other grid axis, and only cells where both values ran are used. Seeds are the replicates::

    from abl.results import compare_axes, load_run

    run = load_run(run_dir)
    for axis in compare_axes(run.trials, run.space, run.metric, run.space.mode).axes:
        print(axis.sentence)   # "`model.pe_type`: rope < sinpe (Holm p=0.003, g=1.8); ..."

How cells combine, pair by pair:

- **paired** (``scipy.stats.ttest_rel``) over cells × seeds when, in every matched cell, both
  values ran the same seeds: seed i of A and seed i of B share their validation data and init
  seed, so the difference of the two is the unit. The spread of those differences includes how
  much the effect varies from cell to cell, so the test is conservative about interactions.
- **Welch** (``scipy.stats.ttest_ind(equal_var=False)``) otherwise, when there is one cell
  (no other axis);
- **OLS** ``y ~ C(value) + C(cell)`` (statsmodels) otherwise, over several cells: the value's
  coefficient is the difference adjusted for the other axes, tested against the residual
  (seed) variance.
- **cells as replicates** with one trial per value and cell (no repeats): seed noise cannot be
  estimated, so the paired test runs over the matched cells and the result is labelled so.

Holm's correction (:func:`holm`, as statsmodels' ``multipletests`` computes it) runs over
every pair of every axis: one family for the report's claims. Each pair is also tested cell by
cell (paired by seed or Welch; Holm over every cell test of the run, a second family); a
sentence names the cells
whose result differs from the overall one (significant the other way, or significant where the
overall is not, or not distinguishable where the overall differs and a one-way F-test of the
paired differences by cell, Holm over the pairs, says that the difference varies). The effect size is
Hedges' g: the difference in units of the within-cell (seed) standard deviation. Where a pair is
not distinguishable, the seeds per cell that 80% power would need at the observed effect size
and at alpha / (number of pairs) come from ``statsmodels.stats.power``.

:func:`cell_f_test` is the F-test of the configurations' means against their seed variance
(``scipy.stats.f_oneway``), which the report's verdict uses together with the pairs.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from abl.results._design import is_continuous, label, levels, natural_key, varying
from abl.results._pairs import (
    ALPHA,
    MAX_SEEDS,
    AxisComparison,
    CellTest,
    Kind,
    PairTest,
    hedges_g,
    holm,
    sentence,
)
from abl.results.aggregate import split_trials
from abl.space.schema import MARK_KEYS, Space, arm_keys

POWER = 0.8  # for the seeds-needed estimate


@dataclass
class Comparisons:
    """The per-axis comparisons of a run (see :func:`compare_axes`)."""

    metric: str
    mode: str
    axes: list[AxisComparison]
    replicates: str  # "seeds" or "cells" (no configuration ran twice)
    skipped: str = ""  # why nothing was compared, if so
    unmatched: list[str] = field(default_factory=list)  # sampled params varying within cells

    @property
    def pairs(self) -> list[PairTest]:
        return [p for a in self.axes for p in a.pairs]

    @property
    def tested(self) -> list[PairTest]:
        """The pairs that have a test (enough matched trials)."""
        return [p for p in self.pairs if math.isfinite(p.p)]

    @property
    def any_significant(self) -> bool:
        """Whether any pair differs overall after Holm's correction (a difference in some cells
        only is what :func:`cell_f_test` looks for)."""
        return any(p.significant for p in self.pairs)

    def to_json(self) -> dict[str, Any]:
        """importance.json's ``comparisons`` key."""
        return {
            "replicates": self.replicates,
            "skipped": self.skipped,
            "axes": [
                {
                    "axis": a.axis,
                    "sentence": a.sentence,
                    "pairs": [
                        {
                            "a": _plain(p.a),
                            "b": _plain(p.b),
                            "diff": _finite(p.diff),
                            "hedges_g": _finite(p.g),
                            "p": _finite(p.p),
                            "p_holm": _finite(p.p_holm),
                            "test": p.kind.value,
                            "cells": p.cells,
                            "seeds": p.seeds,
                            "seeds_needed": p.seeds_needed,
                            "differing_cells": [c.cell for c in p.differing_cells()],
                        }
                        for p in a.pairs
                    ],
                }
                for a in self.axes
            ],
        }


def ablation_axes(ok: pd.DataFrame, space: Space) -> list[str]:
    """The grid parameters (``grid:`` and ``when:`` grids) with two or more values in ``ok``."""
    return [
        k
        for k in arm_keys(space)
        if k in ok and ok[k].nunique(dropna=False) > 1 and not is_continuous(ok[k])
    ]


def compare_axes(trials: pd.DataFrame, space: Space, metric: str, mode: str) -> Comparisons:
    """Compare every pair of values of every ablation axis over the completed trials."""
    ok = split_trials(trials, metric).ok
    axes = ablation_axes(ok, space)
    if not axes:
        return Comparisons(metric, mode, [], "seeds", skipped="no grid axis has two values")
    y = ok[metric].astype(float)
    codes = {a: levels(ok[a]) for a in axes}
    repeats = bool(ok.groupby([codes[a] for a in axes], observed=True).size().max() > 1)
    out = Comparisons(metric, mode, [], "seeds" if repeats else "cells")
    out.unmatched = [
        p
        for p in varying(ok, space.sweep_keys())
        if p not in axes and p not in ("seed", *MARK_KEYS)
    ]
    for axis in axes:
        others = [codes[o] for o in axes if o != axis]
        cell = _cell_labels(ok, [o for o in axes if o != axis], others)
        values = [v for v in codes[axis].cat.categories if (codes[axis] == v).any()]
        pairs = [
            _pair(axis, va, vb, y, codes[axis], cell, ok.get("seed"), mode, repeats)
            for va, vb in combinations(values, 2)
        ]  # None: the two values never ran in the same cell
        out.axes.append(AxisComparison(axis, values, [p for p in pairs if p is not None]))
    _holm(out.pairs)
    _holm(out.pairs, p="varies_p", into="varies_holm")
    _holm([c for p in out.pairs if len(p.by_cell) > 1 for c in p.by_cell])  # one family of cells
    for p in out.pairs:
        p.seeds_needed = _seeds_needed(p, len(out.tested))

    for a in out.axes:
        a.sentence = sentence(a, mode)
    return out


def _cell_labels(ok: pd.DataFrame, names: list[str], codes: list[pd.Series]) -> pd.Series:
    """Every trial's cell as text: the values of the other axes."""
    if not names:
        return pd.Series("", index=ok.index)
    parts = [f"{n}=" + c.astype(object).map(label) for n, c in zip(names, codes, strict=True)]
    out = parts[0]
    for p in parts[1:]:
        out = out + ", " + p
    return out


def _pair(
    axis: str,
    va: Any,
    vb: Any,
    y: pd.Series,
    value: pd.Series,
    cell: pd.Series,
    seed: pd.Series | None,
    mode: str,
    repeats: bool,
) -> PairTest | None:
    """The matched comparison of two values, oriented so that ``a`` has the better mean."""
    from scipy import stats

    in_a, in_b = value == va, value == vb
    common = sorted(set(cell[in_a]) & set(cell[in_b]), key=natural_key)
    if not common:
        return None
    keep = cell.isin(common) & (in_a | in_b)
    ya, yb = y[keep & in_a], y[keep & in_b]
    ga, gb = dict(list(ya.groupby(cell[ya.index]))), dict(list(yb.groupby(cell[yb.index])))
    by_cell = [_cell_test(c, ga[c], gb[c], seed) for c in common]
    seeds = min(min(len(ga[c]), len(gb[c])) for c in common)
    matched = _matched(ya, yb, cell, seed) if repeats else _one_per_cell(ya, yb, cell)
    within = _within_sd(pd.concat([ya, yb]), cell[keep], value[keep])
    varies_p = dz = math.nan
    if matched is not None and len(matched[0]) >= 2:
        xa, xb, cell_of = matched
        diff, p = float(np.mean(xa - xb)), _p(stats.ttest_rel, xa, xb)
        kind = Kind.PAIRED if repeats else Kind.CELLS
        varies_p = _varies(xa - xb, cell_of) if repeats else math.nan
        sd = float(np.std(xa - xb, ddof=1))
        dz = diff / sd if sd > 0 else math.nan
    elif len(common) == 1 and len(ya) >= 2 and len(yb) >= 2:
        diff, p, kind = by_cell[0].diff, by_cell[0].p, Kind.WELCH
    elif repeats and len(common) > 1:
        diff, p = _ols(ya, yb, cell)
        kind = Kind.OLS
    else:  # one matched trial of a value, or one cell without repeats: no test
        diff, p, kind = float(ya.mean() - yb.mean()), math.nan, Kind.NONE
    g = _hedges(diff, *within) if repeats else math.nan
    test = PairTest(
        axis,
        va,
        vb,
        diff,
        g,
        p,
        kind,
        len(common),
        seeds,
        by_cell=by_cell,
        varies_p=varies_p,
        dz=dz,
    )
    better_a = diff <= 0 if mode == "min" else diff >= 0
    return test if better_a else _flip(test)


def _flip(t: PairTest) -> PairTest:
    cells = [CellTest(c.cell, -c.diff, -c.g, c.p, c.p_holm) for c in t.by_cell]
    return PairTest(
        t.axis,
        t.b,
        t.a,
        -t.diff,
        -t.g,
        t.p,
        t.kind,
        t.cells,
        t.seeds,
        by_cell=cells,
        varies_p=t.varies_p,
        dz=-t.dz,
    )


def _varies(d: np.ndarray, cells: np.ndarray) -> float:
    """p of the one-way F-test of paired differences ``d`` between their ``cells``; NaN with
    one cell, or where no cell has two seeds."""
    from scipy import stats

    groups = [d[cells == c] for c in pd.unique(cells)]
    if len(groups) < 2 or all(len(g) < 2 for g in groups):
        return math.nan
    if all(np.ptp(g) == 0 for g in groups):
        return 0.0 if np.ptp(d) > 0 else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.f_oneway(*groups).pvalue)


def _matched(
    ya: pd.Series, yb: pd.Series, cell: pd.Series, seed: pd.Series | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A and B aligned by (cell, seed) when every matched cell ran the same seeds on both,
    with each unit's cell."""
    if seed is None:
        return None
    ka = pd.MultiIndex.from_arrays([cell[ya.index], seed[ya.index]])
    kb = pd.MultiIndex.from_arrays([cell[yb.index], seed[yb.index]])
    if ka.has_duplicates or kb.has_duplicates or set(ka) != set(kb):
        return None
    sa = pd.Series(ya.to_numpy(), index=ka)
    sb = pd.Series(yb.to_numpy(), index=kb).reindex(ka)
    return sa.to_numpy(float), sb.to_numpy(float), ka.get_level_values(0).to_numpy()


def _one_per_cell(
    ya: pd.Series, yb: pd.Series, cell: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """No repeats: A and B aligned by cell, the cells being the replicates (two cells or more)."""
    sa = pd.Series(ya.to_numpy(), index=cell[ya.index].to_numpy())
    sb = pd.Series(yb.to_numpy(), index=cell[yb.index].to_numpy())
    if len(sa) < 2 or sa.index.has_duplicates or sb.index.has_duplicates:
        return None
    return sa.to_numpy(float), sb.reindex(sa.index).to_numpy(float), sa.index.to_numpy()


def _cell_test(name: str, ya: pd.Series, yb: pd.Series, seed: pd.Series | None) -> CellTest:
    """One cell: paired by seed when both ran the same seeds, else Welch; NaN below 2 each."""
    from scipy import stats

    a, b = ya.to_numpy(float), yb.to_numpy(float)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return CellTest(name, diff, math.nan, math.nan)
    g = hedges_g(a, b)
    if seed is not None:  # paired when both ran the same seeds, once each
        sa, sb = seed[ya.index].to_numpy(), seed[yb.index].to_numpy()
        oa, ob = np.argsort(sa, kind="stable"), np.argsort(sb, kind="stable")
        same = len(sa) == len(sb) and np.array_equal(sa[oa], sb[ob])
        if same and len(np.unique(sa)) == len(sa):
            return CellTest(name, diff, g, _p(stats.ttest_rel, a[oa], b[ob]))
    return CellTest(name, diff, g, _p(stats.ttest_ind, a, b, equal_var=False))


def _p(test: Any, a: np.ndarray, b: np.ndarray, **kw: Any) -> float:
    """A two-sided p-value; a difference without any spread (deterministic runs) is p = 0."""
    spread = np.ptp(a - b) if test.__name__ == "ttest_rel" else np.ptp(a) + np.ptp(b)
    if spread == 0:
        return 0.0 if float(np.mean(a) - np.mean(b)) != 0 else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(test(a, b, **kw).pvalue)


def _ols(ya: pd.Series, yb: pd.Series, cell: pd.Series) -> tuple[float, float]:
    """``y ~ C(value) + C(cell)``: B - A's coefficient sign flipped, and its p-value."""
    from statsmodels.regression.linear_model import OLS
    from statsmodels.tools.tools import add_constant

    y = np.concatenate([ya.to_numpy(float), yb.to_numpy(float)])
    is_a = np.r_[np.ones(len(ya)), np.zeros(len(yb))]
    cells = pd.concat([cell[ya.index], cell[yb.index]]).to_numpy()
    dummies = pd.get_dummies(cells, drop_first=True, dtype=float).to_numpy()
    x = add_constant(np.column_stack([is_a, dummies]), has_constant="add")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = OLS(y, x).fit()
    diff, p = float(fit.params[1]), float(fit.pvalues[1])
    if not math.isfinite(p):  # no residual spread at all
        p = 0.0 if diff != 0 else 1.0
    return diff, p


def _within_sd(y: pd.Series, cell: pd.Series, value: pd.Series) -> tuple[float, int]:
    """The pooled standard deviation within (cell, value) groups (seed noise) and its dof."""
    groups = y.groupby([cell[y.index], value[y.index].astype(object)], observed=True)
    n, var = groups.size(), groups.var(ddof=1).fillna(0.0)
    dof = int((n - 1).sum())
    return (math.sqrt(float(((n - 1) * var).sum()) / dof) if dof > 0 else math.nan), dof


def _hedges(diff: float, sd: float, dof: int) -> float:
    """Cohen's d in within-cell SDs, with Hedges' small-sample correction J = 1 - 3/(4 dof - 1)."""
    if not dof or not math.isfinite(sd):
        return math.nan
    if sd == 0:
        return math.copysign(math.inf, diff) if diff else 0.0
    return diff / sd * (1 - 3 / (4 * dof - 1))


def _holm(tests: list[Any], p: str = "p", into: str = "p_holm") -> None:
    """Set ``into`` on every test with a finite ``p`` (Holm's step-down, :func:`holm`)."""
    tested = [t for t in tests if math.isfinite(getattr(t, p))]
    if not tested:
        return
    adjusted = holm([getattr(t, p) for t in tested])
    for t, h in zip(tested, adjusted, strict=True):
        object.__setattr__(t, into, float(h))  # CellTest is frozen


def _seeds_needed(p: PairTest, family: int) -> int | None:
    """Seeds per cell for 80% power at the observed effect and alpha / ``family`` (None: n/a).

    Paired pairs: ``TTestPower`` at d_z, the mean paired difference over its SD, for the
    (cell, seed) units needed, spread over the cells. Others: ``TTestIndPower`` at Hedges' g
    for the trials per value, spread over the cells.
    """
    from statsmodels.stats.power import TTestIndPower, TTestPower

    if p.kind in (Kind.CELLS, Kind.NONE) or not math.isfinite(p.g) or p.significant:
        return None
    paired = p.kind == Kind.PAIRED and math.isfinite(p.dz)
    effect = abs(p.dz if paired else p.g)
    if effect == 0:
        return MAX_SEEDS + 1
    power = TTestPower() if paired else TTestIndPower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            n = float(power.solve_power(effect, alpha=ALPHA / max(family, 1), power=POWER))
        except (ValueError, RuntimeError):
            return None
    if not math.isfinite(n):
        return None
    return min(math.ceil(max(n / p.cells, 2)), MAX_SEEDS + 1)


def cell_f_test(trials: pd.DataFrame, params: list[str], metric: str) -> float | None:
    """p of the one-way F-test of configuration means against within-configuration (seed)
    variance; None when no configuration ran twice or only one configuration ran."""
    from scipy import stats

    ok = split_trials(trials, metric).ok
    names = [p for p in params if p in ok and p != "seed"]
    if not names:
        return None
    y = ok[metric].astype(float)
    groups = [g.to_numpy() for _, g in y.groupby([levels(ok[p]) for p in names], observed=True)]
    if len(groups) < 2 or sum(len(g) - 1 for g in groups) < 1:
        return None
    if all(np.ptp(g) == 0 for g in groups):
        return 0.0 if np.ptp(np.concatenate(groups)) > 0 else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.f_oneway(*groups).pvalue)


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _plain(value: Any) -> Any:
    from abl.results._design import python_value

    value = python_value(value)
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
