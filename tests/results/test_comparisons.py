"""Per-axis comparisons: planted winners are named, noise is not, pairing and Holm are real."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.power import TTestPower

from abl.results import build_report
from abl.results.comparisons import Kind, compare_axes
from abl.space.schema import Space, parse_space
from tests.results.synthetic import planted_trials, trial

PE = {"randn": 0.6, "sinpe": 0.3, "rope": 0.0}
GRID = {"model.pe_type": list(PE), "data.block_size": [32, 64]}


def raw(grid: dict[str, list[Any]], mode: str = "min", repeats: int = 3) -> dict[str, Any]:
    """A space.yaml's content."""
    return {
        "name": "synthetic",
        "trainable": "forecast",
        "grid": grid,
        "repeats": repeats,
        "mode": mode,
    }


def space(grid: dict[str, list[Any]], mode: str = "min", repeats: int = 3) -> Space:
    return parse_space(raw(grid, mode, repeats), source="test")


def pe_effect(config: dict[str, Any]) -> float:
    return PE[config["model.pe_type"]]


def test_planted_differences_name_the_winner_significantly() -> None:
    rows = planted_trials(GRID, pe_effect, repeats=4)
    c = compare_axes(pd.DataFrame(rows), space(GRID), "val/loss", "min")
    pe = next(a for a in c.axes if a.axis == "model.pe_type")
    assert {(p.a, p.b) for p in pe.pairs} == {
        ("rope", "sinpe"),
        ("rope", "randn"),
        ("sinpe", "randn"),
    }
    assert all(p.significant and p.kind == Kind.PAIRED for p in pe.pairs)
    assert pe.sentence.startswith("`model.pe_type`: rope < sinpe < randn (every pair: Holm p")
    block = next(a for a in c.axes if a.axis == "data.block_size")
    assert not block.pairs[0].significant and "not distinguishable at 4 seeds" in block.sentence


def test_direction_follows_the_mode() -> None:
    rows = planted_trials(GRID, pe_effect, repeats=4)
    c = compare_axes(pd.DataFrame(rows), space(GRID, mode="max"), "val/loss", "max")
    pe = next(a for a in c.axes if a.axis == "model.pe_type")
    assert pe.sentence.startswith("`model.pe_type`: randn > sinpe > rope")


def test_an_effect_in_one_cell_only_is_named_at_that_cell() -> None:
    def effect(config: dict[str, Any]) -> float:
        at_64 = config["data.block_size"] == 64
        return {"rope": -0.5 if at_64 else 0.0, "sinpe": 0.0}[config["model.pe_type"]]

    grid = {"model.pe_type": ["sinpe", "rope"], "data.block_size": [32, 64]}
    rows = planted_trials(grid, effect, repeats=5, noise=0.05, seed=3)
    pe = compare_axes(pd.DataFrame(rows), space(grid), "val/loss", "min").axes[0]
    (pair,) = pe.pairs
    assert pair.significant and pair.varies  # rope is better on average, but not everywhere
    assert [c.cell for c in pair.differing_cells()] == ["data.block_size=32"]
    assert pe.sentence.startswith("`model.pe_type`: rope < sinpe (Holm p=")
    assert "but the difference varies: rope < sinpe at `data.block_size=64` (Holm p" in pe.sentence
    assert "not distinguishable at `data.block_size=32` (Holm p" in pe.sentence


def test_no_planted_effect_no_comparison_is_called(make_run: Callable[..., Path]) -> None:
    rows = planted_trials(GRID, lambda c: 0.0, repeats=3, noise=0.1, seed=5)
    c = compare_axes(pd.DataFrame(rows), space(GRID), "val/loss", "min")
    assert c.pairs and not c.any_significant
    md = build_report(make_run(rows, space=raw(GRID))).markdown
    text = md.read_text()
    assert "**No ablation effect detectable at this budget**" in text
    assert text.index("## Verdict") < text.index("## Sweep") < text.index("## Which parameters")
    assert "**These shares rank noise**" in text
    assert "not distinguishable at 3 seeds" in text
    assert "seeds per cell would give 80% power at this effect size, paired d_z=" in text
    # the estimate: statsmodels' power of a paired t-test at the observed d_z, alpha / pairs
    worst = max(c.pairs, key=lambda p: abs(p.dz))
    units = TTestPower().solve_power(abs(worst.dz), alpha=0.05 / len(c.pairs), power=0.8)
    assert worst.seeds_needed == max(math.ceil(units / worst.cells), 2)


def test_planted_effect_report_says_no_noise(make_run: Callable[..., Path]) -> None:
    rows = planted_trials(GRID, pe_effect, repeats=3)
    text = build_report(make_run(rows, space=raw(GRID)))
    md = text.markdown.read_text()
    assert "No ablation effect detectable" not in md and "rank noise" not in md
    assert "- `model.pe_type`: rope < sinpe < randn" in md


def test_paired_by_seed_when_seeds_match_else_welch() -> None:
    grid = {"model.pe_type": ["sinpe", "rope"]}
    # A large seed effect shared by both arms (same data and init per seed), a small arm effect
    rows = planted_trials(
        grid,
        lambda c: -0.05 * (c["model.pe_type"] == "rope"),
        repeats=6,
        noise=0.01,
        seed_spread=0.5,
        seed=1,
    )
    frame = pd.DataFrame(rows)
    (pair,) = compare_axes(frame, space(grid), "val/loss", "min").pairs
    rope = frame[frame["model.pe_type"] == "rope"].sort_values("seed")["val/loss"]
    sinpe = frame[frame["model.pe_type"] == "sinpe"].sort_values("seed")["val/loss"]
    assert pair.kind == Kind.PAIRED and (pair.a, pair.b) == ("rope", "sinpe")
    assert pair.p == stats.ttest_rel(rope, sinpe).pvalue < 0.01  # pairing removes seed noise
    assert stats.ttest_ind(rope, sinpe, equal_var=False).pvalue > 0.05  # Welch would not see it
    # Different seeds for the two arms: nothing to pair, Welch
    frame.loc[frame["model.pe_type"] == "rope", "seed"] += 100
    (pair,) = compare_axes(frame, space(grid), "val/loss", "min").pairs
    assert pair.kind == Kind.WELCH
    assert pair.p == stats.ttest_ind(rope, sinpe, equal_var=False).pvalue


def test_unmatched_seeds_over_several_cells_use_ols_with_the_cell() -> None:
    rows = planted_trials(GRID, pe_effect, repeats=3)
    rows = rows[1:]  # one seed missing in one cell: not every cell pairs
    pairs = compare_axes(pd.DataFrame(rows), space(GRID), "val/loss", "min").pairs
    pe = [p for p in pairs if p.axis == "model.pe_type"]
    assert {p.kind for p in pe} == {Kind.OLS, Kind.PAIRED}  # pairs without the gap still pair
    assert all(p.significant for p in pe)


def test_holm_does_not_call_a_small_difference_among_many_pairs() -> None:
    base = np.array([1.0, 1.1, 0.9, 1.05])
    shift = np.array([0.1, 0.2, 0.05, 0.15])  # paired t: p ~ 0.03 on its own
    values = [f"v{i}" for i in range(8)]
    rows = []
    for v in values:
        for s in range(4):
            y = base[s] + (shift[s] if v == "v1" else 0.0)
            rows.append(trial(len(rows), {"model.kind": v}, float(y), seed=s))
    grid = {"model.kind": values}
    alone = compare_axes(
        pd.DataFrame(rows[:8]), space({"model.kind": ["v0", "v1"]}), "val/loss", "min"
    )
    assert alone.pairs[0].significant and alone.pairs[0].p < 0.05  # two values: it is called
    c = compare_axes(pd.DataFrame(rows), space(grid), "val/loss", "min")
    assert len(c.pairs) == 28
    assert min(p.p for p in c.pairs) < 0.05  # unadjusted, v1 would be called...
    assert not c.any_significant  # ...but not after Holm over 28 pairs
    assert "v0 vs v1 not distinguishable" in c.axes[0].sentence


def test_one_seed_per_cell_uses_cells_as_replicates_and_says_so(
    make_run: Callable[..., Path],
) -> None:
    rows = planted_trials(GRID, pe_effect, repeats=1)
    c = compare_axes(pd.DataFrame(rows), space(GRID, repeats=1), "val/loss", "min")
    assert c.replicates == "cells" and {p.kind for p in c.pairs} == {Kind.CELLS}
    assert all(np.isnan(p.g) and p.seeds_needed is None for p in c.pairs)
    md = build_report(make_run(rows, space=raw(GRID, repeats=1)))
    text = md.markdown.read_text()
    assert "no configuration ran twice, so the matched cells are the replicates" in text
    assert "matched cells as replicates (no seed repeats)" in text


def test_a_single_trial_per_value_is_never_tested() -> None:
    grid = {"model.pe_type": ["sinpe", "rope"]}
    rows = planted_trials(grid, pe_effect, repeats=1)
    c = compare_axes(pd.DataFrame(rows), space(grid, repeats=1), "val/loss", "min")
    assert c.tested == [] and c.pairs[0].kind == Kind.NONE and not c.any_significant
    assert "rope vs sinpe cannot be tested: a test needs two trials of each" in c.axes[0].sentence


def test_sampled_parameters_are_named_as_noise_within_cells(make_run: Callable[..., Path]) -> None:
    rows = planted_trials(GRID, pe_effect, repeats=5)  # 30 draws of lr: a continuous parameter
    rng = np.random.default_rng(0)
    for r in rows:
        r["train.lr"] = float(10 ** rng.uniform(-4, -2))
    spec = {**raw(GRID), "sample": {"train.lr": {"loguniform": [1e-4, 1e-2]}}}
    c = compare_axes(pd.DataFrame(rows), parse_space(spec, source="t"), "val/loss", "min")
    assert c.unmatched == ["train.lr"]
    md = build_report(make_run(rows, space=spec)).markdown.read_text()
    assert "`train.lr` vary within cells and count as noise" in md


@pytest.mark.parametrize("seed", range(5))
def test_holm_is_statsmodels_holm(seed: int) -> None:
    """abl's Holm step-down gives statsmodels' adjusted p-values, ties and all."""
    from statsmodels.stats.multitest import multipletests

    from abl.results._pairs import holm

    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, size=int(rng.integers(1, 30)))
    p[: len(p) // 3] = p[0]  # ties
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-12)
