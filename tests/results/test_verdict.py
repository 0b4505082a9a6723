"""The report's top: leaky metrics, metrics that never moved, constant metrics; importance
intervals; which cells of the top table are bold."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from abl.cli._render import summary_lines
from abl.results import build_report, compute_importance
from tests.results.synthetic import GRID, grid_trials, history_of, planted_trials, trial

PE = {"randn": 0.6, "sinpe": 0.3, "rope": 0.0}
SMALL = {"model.pe_type": list(PE), "data.block_size": [32, 64]}


def raw(grid: dict[str, list[Any]], **kw: Any) -> dict[str, Any]:
    return {"name": "synthetic", "trainable": "forecast", "grid": grid, "repeats": 3, **kw}


def section(md: str, heading: str) -> str:
    """The text of one ``## heading`` section."""
    start = md.index(f"## {heading}")
    end = md.find("\n## ", start + 3)
    return md[start : end if end > 0 else None]


@pytest.mark.parametrize("method", ["anova", "marginal"])
def test_bootstrap_intervals_hold_the_share_narrow_for_an_effect_wide_for_noise(
    method: str,
) -> None:
    params = list(GRID)
    strong = compute_importance(
        pd.DataFrame(grid_trials()), params, "val/loss", "min", methods=[method]
    )
    noise = compute_importance(
        pd.DataFrame(grid_trials(noise=2.0)), params, "val/loss", "min", methods=[method]
    )
    for imp in (strong, noise):
        result = imp.groups["all"][0]
        assert set(result.intervals) == set(params)
        for p, (low, high) in result.intervals.items():
            assert low <= result.scores[p] <= high
    firm = strong.groups["all"][0].intervals["model.pe_type"]
    loose = noise.groups["all"][0].intervals["model.pe_type"]
    assert firm[1] - firm[0] < 0.05 and firm[0] > 0.5
    assert loose[1] - loose[0] > 0.1
    assert "200 resamples of the seeds" in strong.groups["all"][0].note


def test_one_trial_per_cell_has_no_interval() -> None:
    frame = pd.DataFrame(grid_trials(repeats=1))
    imp = compute_importance(frame, list(GRID), "val/loss", "min", methods=["anova", "marginal"])
    for result in imp.groups["all"]:
        assert result.intervals == {} and "no seed to resample" in result.note


def test_report_prints_shares_with_intervals(grid_run: Path) -> None:
    md = build_report(grid_run).markdown.read_text()
    assert re.search(r"\| model\.pe_type \| 6\d\.\d% \[6\d, 6\d\] \|", md)
    assert "95% interval from redrawing every grid cell's seeds" in md


def test_constant_metric_says_no_effect_detectable(make_run: Callable[..., Path]) -> None:
    rows = planted_trials(SMALL, lambda c: 0.0, noise=0.0)
    md = build_report(make_run(rows, space=raw(SMALL))).markdown.read_text()
    top = section(md, "Verdict")
    assert "**No ablation effect detectable at this budget**: `val/loss` is 2 in every one" in top
    assert "**These shares rank noise**" in md


def test_a_metric_that_never_left_its_initial_value_is_flagged(
    make_run: Callable[..., Path],
) -> None:
    rows = planted_trials(SMALL, lambda c: PE[c["model.pe_type"]])
    flat = [
        {**h, "val/loss": next(r["val/loss"] for r in rows if r["trial_id"] == h["trial_id"])}
        for h in history_of(rows)
    ]
    md = build_report(make_run(rows, space=raw(SMALL), history=flat)).markdown.read_text()
    assert f"**`val/loss` never left its initial value**: in every one of {len(rows)} trials" in (
        section(md, "Verdict")
    )
    moving = build_report(make_run(rows, space=raw(SMALL), history=history_of(rows)))
    assert "never left its initial value" not in moving.markdown.read_text()
    half = flat[:3] + history_of(rows)[3:]  # the first trial's three reports stay flat
    partly = build_report(make_run(rows, space=raw(SMALL), history=half))
    some = partly.markdown.read_text()
    assert f"`val/loss` never left its initial value in 1 of {len(rows)} trials" in some
    # The terminal's verdict line says the same: one trial of many, not the whole sweep.
    lines = summary_lines(json.loads(partly.importance.read_text()))
    assert f"verdict  val/loss never left its initial value in 1 of {len(rows)} trials" in lines[0]


def test_leaky_metric_with_non_causal_arms_is_warned_at_the_top(
    grid_run: Path, make_run: Callable[..., Path]
) -> None:
    md = build_report(grid_run).markdown.read_text()
    top = section(md, "Verdict")
    assert "**`val/loss` lets non-causal arms see their targets**" in top
    assert "such as `val/loss_last` (not recorded here)" in top
    assert "Not a result: the metric leaks" in top  # on the is_causal sentence
    rows = grid_trials()
    for r in rows:
        r["val/loss_last"] = r["val/loss"] + 0.1
    other = make_run(rows, space=raw(GRID))
    assert "rank by `val/loss_last` (`abl report RUN --metric val/loss_last`)" in (
        build_report(other).markdown.read_text()
    )
    assert (
        "see their targets" not in build_report(other, metric="val/loss_last").markdown.read_text()
    )
    causal = [r for r in grid_trials() if r["model.is_causal"]]
    space = raw({**GRID, "model.is_causal": [True]})
    assert (
        "see their targets" not in build_report(make_run(causal, space=space)).markdown.read_text()
    )


def test_top_table_shows_varying_params_and_scores_and_bolds_only_real_bests(
    make_run: Callable[..., Path],
) -> None:
    grid = {"model.pe_type": ["sinpe", "rope"], "model.n_embd": [64]}
    rows = []
    for i, (pe, loss) in enumerate([("rope", 1.23456789), ("sinpe", 1.5), ("rope", 1.4)]):
        rows.append(
            trial(
                i,
                {"model.pe_type": pe, "model.n_embd": 64},
                loss,
                seed=i,
                **{
                    "val/acc_seq": 0.1 * (i + 1),  # a declared max score: 0.3 is best
                    "perf/samples_per_s": 1000.0 + i,  # a measurement: not shown
                    "model/params": 5000,  # a measurement: not shown
                    "val/custom": float(i),  # unknown to abl: shown, never bold
                    "predict/mse_batch": 7.0,  # a score, but constant: not bold
                },
            )
        )
    md = build_report(make_run(rows, space=raw(grid))).markdown.read_text()
    table = section(md, "Top 3 of 3")
    head = table.splitlines()[2]
    assert head == (
        "| # | trial | model.pe_type | seed | val/loss | predict/mse_batch | train/loss | "
        "val/acc_seq | val/custom |"
    )
    assert "| 1 | t00000 | rope | 0 | **1.235** | 7 | **1.111** | 0.1 | 0 |" in table
    assert "| 3 | t00001 | sinpe | 1 | 1.5 | 7 | 1.35 | **0.2** | 1 |" not in table
    assert "| **0.3** | 2 |" in table  # val/acc_seq is max, bold on the row that has 0.3
    max_md = build_report(make_run(rows, space=raw(grid, mode="max"))).markdown.read_text()
    assert "| 1 | t00001 | sinpe | 1 | **1.5** |" in max_md  # the space's mode ranks its metric


def test_repeats_table_prints_mean_plus_minus_std(grid_run: Path) -> None:
    md = build_report(grid_run).markdown.read_text()
    assert "| val/loss mean ± std | n | 95% CI |" in md
    assert re.search(r"\| \d\.\d{1,3} ± 0\.\d+ \| 3 \| \[\d\.\d{1,3}, \d\.\d{1,3}\] \|", md)


def test_an_interaction_without_main_effects_is_not_called_noise(
    make_run: Callable[..., Path],
) -> None:
    grid = {"model.is_qln": [True, False], "model.is_kln": [True, False]}

    def effect(c: dict[str, Any]) -> float:
        return 0.5 if c["model.is_qln"] == c["model.is_kln"] else -0.5

    rows = planted_trials(grid, effect, repeats=3)
    md = build_report(make_run(rows, space=raw(grid))).markdown.read_text()
    top = section(md, "Verdict")
    assert "No ablation effect detectable" not in top
    assert "No value of any axis is better on average, but the configurations differ" in top
