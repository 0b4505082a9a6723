"""One ablation axis compared pair by pair: the tests' types, the statistics they share
(Hedges' g, Holm's correction) and the plain sentence that sums an axis up.

"`model.pe_type`: rope < sinpe < none (every pair: Holm p<0.001, g ≥ 9.3)." when every pair
differs; otherwise a clause per pair, significant ones first: "sinpe vs randn not
distinguishable at 2 seeds (Holm p=0.41; about 6 seeds per cell would give 80% power at this
effect size, paired d_z=1.1)", with the cells whose own test says otherwise named after it.
:mod:`abl.results.comparisons` runs the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from abl.results._design import label

ALPHA = 0.05  # after Holm's correction
MAX_NAMED = 3  # cells named in a sentence where the result differs; the rest are counted
MAX_SEEDS = 1000  # seeds-needed estimates beyond this read "more than 1000"


class Kind(str, Enum):
    """How a pair was tested (``PairTest.kind``); the value is what the report prints."""

    PAIRED = "paired t-test over cells × seeds"
    OLS = "OLS, value + cell"
    WELCH = "Welch t-test"
    NONE = "not tested (too few matched trials)"
    CELLS = "paired over cells (no seed repeats)"


@dataclass(frozen=True)
class CellTest:
    """One matched cell of a pair; ``diff`` is mean A - mean B there."""

    cell: str  # "train.lr=0.001, model.n_embd=64" ("" when there is no other axis)
    diff: float
    g: float
    p: float
    p_holm: float = math.nan  # over every cell test of the run

    @property
    def significant(self) -> bool:
        return bool(self.p_holm < ALPHA)


@dataclass
class PairTest:
    """Two values of one axis, matched on the other axes; ``a`` has the better mean."""

    axis: str
    a: Any
    b: Any
    diff: float  # mean of A - B over the matched cells, metric units
    g: float  # Hedges' g of that difference in within-cell SDs (NaN without repeats)
    p: float
    kind: Kind
    cells: int  # matched cells
    seeds: int  # the fewest seeds of either value in a matched cell
    seeds_needed: int | None = None  # for 80% power at this effect size (None: n/a)
    by_cell: list[CellTest] = field(default_factory=list)
    p_holm: float = math.nan
    # does the difference vary between cells? F-test of the paired differences by cell
    varies_p: float = math.nan
    dz: float = math.nan  # paired pairs: mean paired difference / its SD
    varies_holm: float = math.nan  # Holm over the pairs that have one

    @property
    def significant(self) -> bool:
        """Whether A and B differ at ``ALPHA`` after Holm's correction over all pairs."""
        return bool(self.p_holm < ALPHA)

    @property
    def varies(self) -> bool:
        """Whether the difference depends on the cell (after Holm over the pairs)."""
        return bool(self.varies_holm < ALPHA)

    def differing_cells(self) -> list[CellTest]:
        """Cells whose own (Holm-corrected) test says something else than the overall one:
        significant the other way, significant where the overall is not, or, when the
        difference varies between cells, not distinguishable where the overall differs."""
        if len(self.by_cell) < 2:
            return []
        sign = np.sign(self.diff)
        return [
            c
            for c in self.by_cell
            if (c.significant and (not self.significant or np.sign(c.diff) != sign))
            or (self.significant and self.varies and not c.significant)
        ]


@dataclass
class AxisComparison:
    """Every pair of one axis's values, and the sentence that sums them up."""

    axis: str
    values: list[Any]
    pairs: list[PairTest]
    sentence: str = ""


def holm(pvalues: Any) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the order given.

    What ``statsmodels.stats.multitest.multipletests(method="holm")[1]`` returns (a test
    checks that they agree), written here because that function runs a full ``gc.collect()``
    on every call: 0.1-0.3 s each in a sweep's driver, where torch, Ray and MLflow fill the
    heap, and a report makes one call per axis.
    """
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    steps = p[order] * np.arange(len(p), 0, -1)
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return adjusted


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d of ``a - b`` with the pooled SD, times Hedges' small-sample correction."""
    na, nb = len(a), len(b)
    pooled = ((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2)
    diff = float(np.mean(a) - np.mean(b))
    if pooled == 0:
        return math.copysign(math.inf, diff) if diff else 0.0
    d = diff / math.sqrt(pooled)
    return float(d * (1 - 3 / (4 * (na + nb) - 9)))


def sentence(a: AxisComparison, mode: str) -> str:
    """One plain sentence about an axis: a chain when every pair differs, else pair by pair."""
    if not a.pairs:
        return f"`{a.axis}`: no two values ran in the same cell: nothing to compare."
    op = "<" if mode == "min" else ">"
    if all(p.significant and not p.differing_cells() for p in a.pairs) and len(a.pairs) > 1:
        order = sorted(
            {*(p.a for p in a.pairs), *(p.b for p in a.pairs)}, key=lambda v: _wins(a, v)
        )
        worst_p = max(p.p_holm for p in a.pairs)
        least_g = min(abs(p.g) for p in a.pairs)
        chain = f" {op} ".join(label(v) for v in order)
        g = "" if math.isnan(least_g) else f", g ≥ {_g(least_g)}"
        return f"`{a.axis}`: {chain} (every pair: Holm {_pfmt(worst_p, '≤')}{g})."
    ordered = sorted(a.pairs, key=lambda p: (not p.significant, p.p_holm))
    return f"`{a.axis}`: " + "; ".join(_clause(p, op) for p in ordered) + "."


def _wins(a: AxisComparison, value: Any) -> int:
    """How many pairs ``value`` loses (0 for the best value)."""
    return sum(1 for p in a.pairs if p.b == value)


def _clause(p: PairTest, op: str) -> str:
    if p.significant:
        text = f"{label(p.a)} {op} {label(p.b)} ({_stats(p)})"
    elif not math.isfinite(p.p_holm):
        text = (
            f"{label(p.a)} vs {label(p.b)} cannot be tested: a test needs two trials of each "
            "in a matched cell, or two matched cells"
        )
    else:
        text = f"{label(p.a)} vs {label(p.b)} not distinguishable {_budget(p)}"
    if p.kind == Kind.CELLS:
        text += ", matched cells as replicates (no seed repeats)"
    return text + _named_cells(p, op)


def _stats(p: PairTest) -> str:
    g = f", g={_g(abs(p.g))}" if not math.isnan(p.g) else ""
    return f"Holm {_pfmt(p.p_holm)}{g}"


def _budget(p: PairTest) -> str:
    if p.kind == Kind.CELLS:
        return f"over {p.cells} cells (Holm {_pfmt(p.p_holm)})"
    text = f"at {p.seeds} seed{'s' if p.seeds != 1 else ''} (Holm {_pfmt(p.p_holm)}"
    if p.seeds_needed is not None and p.seeds_needed > p.seeds:
        need = f"more than {MAX_SEEDS}" if p.seeds_needed > MAX_SEEDS else f"about {p.seeds_needed}"
        size = (
            f"paired d_z={_g(abs(p.dz))}"
            if p.kind == Kind.PAIRED and math.isfinite(p.dz)
            else f"g={_g(abs(p.g))}"
        )
        text += f"; {need} seeds per cell would give 80% power at this effect size, {size}"
    return text + ")"


def _named_cells(p: PairTest, op: str) -> str:
    """The cells whose own test disagrees with the pair's, grouped by outcome; when the
    difference varies between cells, also those where it holds. Up to ``MAX_NAMED`` cells of
    an outcome are named, more are counted with one example."""
    cells = p.differing_cells()
    if not cells:
        return ""
    if p.significant and p.varies:  # say where it holds too, first
        cells = [c for c in p.by_cell if c.significant and c not in cells] + cells

    def outcome(c: CellTest) -> str:
        if not c.significant:
            return "not distinguishable"
        a_better = c.diff <= 0 if op == "<" else c.diff >= 0
        x, y = (p.a, p.b) if a_better else (p.b, p.a)
        return f"{label(x)} {op} {label(y)}"

    groups: dict[str, list[CellTest]] = {}
    for c in cells:
        groups.setdefault(outcome(c), []).append(c)
    parts = []
    for what, cs in groups.items():
        if len(cs) == 1:
            g = f", g={_g(abs(cs[0].g))}" if cs[0].significant and not math.isnan(cs[0].g) else ""
            parts.append(f"{what} at `{cs[0].cell}` (Holm {_pfmt(cs[0].p_holm)}{g})")
        elif len(cs) <= MAX_NAMED:
            parts.append(f"{what} at " + " and ".join(f"`{c.cell}`" for c in cs))
        else:
            parts.append(f"{what} in {len(cs)} cells (e.g. at `{cs[0].cell}`)")
    lead = ", but the difference varies: " if p.significant and p.varies else ", but "
    return lead + ", ".join(parts) + " (cells: Holm over every cell test)"


def _pfmt(p: float, op: str = "=") -> str:
    """``p=0.03``, ``p<0.001`` (``op``: how the value relates, e.g. ``≤`` for a maximum)."""
    return "p<0.001" if p < 0.001 else f"p{op}{p:.2g}" if p < 0.1 else f"p{op}{p:.2f}"


def _g(g: float) -> str:
    return "inf" if math.isinf(g) else f"{g:.2g}" if abs(g) < 10 else f"{g:.0f}"
