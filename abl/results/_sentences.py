"""The plain sentence of one ablation axis, from its pairwise comparisons.

"`model.pe_type`: rope < sinpe < none (every pair: Holm p<0.001, g ≥ 9.3)." when every pair
differs; otherwise a clause per pair, significant ones first: "sinpe vs randn not
distinguishable at 2 seeds (Holm p=0.41; about 6 seeds per cell would give 80% power at this
effect size, paired d_z=1.1)", with the cells whose own test says otherwise named after it.
"""

from __future__ import annotations

import math
from typing import Any

from abl.results._design import label
from abl.results.comparisons import MAX_NAMED, MAX_SEEDS, AxisComparison, CellTest, Kind, PairTest


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
