"""build_report on real run directories: a full grid, one trial, all errored, diverged trials."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from abl.errors import AblError
from abl.results import build_report, compare_runs, resolve_run
from tests.results.synthetic import GRID, grid_trials, trial

CONFIG = {"model.pe_type": "rope", "model.is_causal": True, "train.lr": 1e-3, "model.n_embd": 64}


def assert_self_contained(html: str) -> None:
    sources = re.findall(r"src=['\"]([^'\"]*)", html)
    assert all(s.startswith("data:image/svg+xml;base64,") for s in sources)  # vector plots
    assert "<link" not in html and "<script" not in html


def test_full_grid_report(grid_run: Path) -> None:
    paths = build_report(grid_run, pairs=["model.pe_type,model.is_causal"], k=5)
    md = paths.markdown.read_text()
    assert md.startswith("# synthetic: which choices matter for val/loss")
    for heading in ("## Sweep", "## Top 5 of 72", "## Repeats", "## Which parameters matter"):
        assert heading in md
    url = "http://127.0.0.1:5000/#/experiments/7/runs/runt"
    assert f"]({url}" in md  # trial ids link to their MLflow runs
    assert "| anova | fanova | F | p |" in md
    assert "train.lr × model.n_embd" in md
    names = {p.name for p in paths.plots}
    assert "heatmap_train.lr__model.n_embd.png" in names  # the strongest interaction
    assert "heatmap_model.pe_type__model.is_causal.png" in names  # the pair asked for
    assert "curves_val_loss.png" in names and "effect_model.pe_type.png" in names
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths.plots)
    html = paths.html.read_text()
    assert_self_contained(html)
    assert html.count("data:image/svg+xml;base64,") == len(paths.plots)
    assert all(p.with_suffix(".svg").is_file() for p in paths.plots)
    data = json.loads(paths.importance.read_text())
    anova = data["groups"]["all"][0]
    assert anova["method"] == "anova" and next(iter(anova["scores"])) == "model.pe_type"
    assert anova["interactions"][0]["params"] == ["train.lr", "model.n_embd"]
    assert {t["term"] for t in anova["ftests"]} >= {"model.pe_type", "train.lr × model.n_embd"}
    assert data["trials"] == {"total": 72, "ok": 72, "pruned": 0, "failed": 0, "no_value": 0}


def test_rebuild_removes_stale_plots(grid_run: Path) -> None:
    stale = grid_run / "plots" / "effect_gone.png"
    stale.parent.mkdir()
    stale.write_bytes(b"x")
    build_report(grid_run, by="model.is_causal")
    assert not stale.exists()
    assert "### `model.is_causal=true`" in (grid_run / "report.md").read_text()


def test_one_trial(make_run: Callable[..., Path]) -> None:
    run = make_run([trial(0, CONFIG, 1.5)])
    paths = build_report(run)
    md = paths.markdown.read_text()
    assert "## Top 1 of 1 by val/loss" in md and "| 1 | t00000 |" in md
    assert "Nothing to decompose: only 1 usable trial." in md
    assert "## Repeats" not in md
    assert json.loads(paths.importance.read_text())["skipped"] == {"all": "only 1 usable trial"}
    assert_self_contained(paths.html.read_text())


def test_all_trials_errored(make_run: Callable[..., Path]) -> None:
    rows = [
        trial(i, CONFIG, None, status="errored", error=f"Traceback\nRuntimeError: bad {i}")
        for i in range(3)
    ]
    paths = build_report(make_run(rows))
    md = paths.markdown.read_text()
    assert "**Nothing to rank**: no completed trial of 3 has a finite `val/loss`" in md
    assert md.count("RuntimeError: bad") == 3 and "## Not ranked" in md
    assert paths.plots == []
    assert json.loads(paths.importance.read_text())["groups"] == {}
    assert_self_contained(paths.html.read_text())


def test_diverged_trials_only_leave_nothing_to_rank(make_run: Callable[..., Path]) -> None:
    rows = [trial(i, CONFIG, float("nan"), status="diverged") for i in range(2)]
    md = build_report(make_run(rows)).markdown.read_text()
    assert "**Nothing to rank**" in md and md.count("| diverged |") == 3  # summary + 2 listed


def test_diverged_trials_beside_completed_ones_are_listed(make_run: Callable[..., Path]) -> None:
    rows = grid_trials()
    rows[0].update(status="diverged", **{"val/loss": float("nan")})
    md = build_report(make_run(rows)).markdown.read_text()
    assert "## Top 10 of 71" in md
    assert "| t00000 | diverged |" in md


def test_bad_metric_param_and_pair_name_what_exists(grid_run: Path) -> None:
    with pytest.raises(
        AblError, match=r"metric must be one of val/loss, train/loss; got 'val/los'"
    ):
        build_report(grid_run, metric="val/los")
    with pytest.raises(AblError, match=r"varies \(model.pe_type, model.is_causal, train.lr"):
        build_report(grid_run, by="model.kind")
    with pytest.raises(AblError, match="a pair is two different parameters"):
        build_report(grid_run, pairs=["model.pe_type"])


def test_resolve_run_picks_the_latest_run_of_a_sweep(make_run: Callable[..., Path]) -> None:
    first = make_run([trial(0, CONFIG, 1.0)])
    second = make_run([trial(0, CONFIG, 2.0)])
    root = first.parent.parent
    assert resolve_run("synthetic", root=root) == second
    assert resolve_run(first, root=root) == first
    with pytest.raises(
        AblError, match=r"sweep name under .* \(synthetic\); got 'synthetc'; did you mean"
    ):
        resolve_run("synthetc", root=root)


def test_compare_runs_diffs_spaces_and_best_metrics(
    grid_run: Path, make_run: Callable[..., Path]
) -> None:
    space = {"name": "synthetic", "trainable": "forecast", "grid": {**GRID, "train.lr": [1e-3]}}
    other = make_run([trial(0, CONFIG, 1.0)], space=space)
    c = compare_runs(grid_run, other, k=2)
    assert not c.same_space
    assert dict((k, (a, b)) for k, a, b in c.space_diff) == {
        "grid.train.lr": ([1e-3, 3e-4], [1e-3]),
        "repeats": (3, 1),
    }
    best = c.best.set_index("metric")
    assert best.loc["val/loss", "B"] == 1.0 and best.loc["val/loss", "change"] < 0
    assert len(c.top_a) == 2 and len(c.top_b) == 1
    assert compare_runs(grid_run, grid_run).same_space


def test_compare_has_no_best_of_a_measurement(make_run: Callable[..., Path]) -> None:
    rows = [
        trial(i, CONFIG, 1.0 + i, **{"perf/samples_per_s": 10.0 * i, "val/acc_seq": 0.1 * i})
        for i in range(3)
    ]
    run = make_run(rows)
    best = compare_runs(run, run).best.set_index("metric")
    assert "perf/samples_per_s" not in best.index  # a throughput has no "best"
    assert best.loc["val/acc_seq", "mode"] == "max" and best.loc["val/acc_seq", "A"] == 0.2


def test_a_run_without_trials_yet(make_run: Callable[..., Path]) -> None:
    md = build_report(make_run([])).markdown.read_text()
    assert "**Nothing to rank**: no trial has started." in md


def test_a_report_for_another_metric_goes_beside_the_space_metrics(grid_run: Path) -> None:
    main = build_report(grid_run)
    before = {p: p.read_bytes() for p in [main.markdown, main.html, main.importance, *main.plots]}
    other = build_report(grid_run, metric="train/loss")
    assert other.markdown.name == "report.train_loss.md"
    assert other.importance.name == "importance.train_loss.json"
    assert other.markdown.read_text().startswith("# synthetic: which choices matter for train/loss")
    assert other.plots and all(p.parent == grid_run / "plots" / "train_loss" for p in other.plots)
    # the space metric's report, importance and plots (its curves too) are untouched
    assert {p: p.read_bytes() for p in before} == before
    assert (grid_run / "plots" / "curves_val_loss.png").is_file()


def test_a_metric_without_a_declared_direction_needs_a_mode(
    make_run: Callable[..., Path],
) -> None:
    rows = [
        trial(i, {**CONFIG, "model.pe_type": pe}, 1.0 + i)
        for i, pe in enumerate(GRID["model.pe_type"])
    ]
    for i, row in enumerate(rows):
        row["custom/score"] = float(i)
    run = make_run(rows)
    with pytest.raises(AblError, match="custom/score has no declared direction"):
        build_report(run, metric="custom/score")
    with pytest.raises(AblError, match="is better when lower"):
        build_report(run, metric="train/loss", mode="max")
    paths = build_report(run, metric="custom/score", mode="max")
    assert "ranked by `custom/score` (max)" in paths.markdown.read_text()


def test_plots_show_every_trial_log_scales_and_curves_per_configuration(grid_run: Path) -> None:
    import base64

    from abl.results.plots import DPI, log_t_interval, spans_decades

    assert DPI >= 150
    center, low, high = log_t_interval(np.array([0.001, 0.01, 0.1]))
    assert 0 < low < center < high and center == pytest.approx(0.01)
    assert spans_decades(np.array([0.01, 0.5])) and not spans_decades(np.array([0.2, 0.5]))
    assert not spans_decades(np.array([-1.0, 5.0]))
    paths = build_report(grid_run)
    effect = (grid_run / "plots" / "effect_model.pe_type.svg").read_text()
    # 72 trials as dots (a scatter's path collection) beside the means and their intervals
    assert "dots: trials" in effect and effect.count("<use ") >= 72
    curves = (grid_run / "plots" / "curves_val_loss.svg").read_text()
    assert curves.count(">epoch<") == 2  # train/loss beside val/loss, each against epoch
    assert ">train/loss<" in curves and ">val/loss<" in curves and "(3 seeds)" in curves
    html = paths.html.read_text()
    svg = base64.b64decode(html.split("data:image/svg+xml;base64,")[1].split("'")[0])
    assert svg.startswith(b"<?xml")


def test_a_grid_cell_whose_trials_all_failed_is_named_and_the_report_is_written(
    make_run: Callable[..., Path],
) -> None:
    rows = grid_trials()
    lost = {"model.pe_type": "none", "model.is_causal": False, "train.lr": 1e-3, "model.n_embd": 64}
    for row in rows:
        if all(row[k] == v for k, v in lost.items()):
            row.update(status="errored", error="boom")
            row["val/loss"] = None
    space = {"name": "synthetic", "trainable": "forecast", "grid": GRID, "repeats": 3}
    md = build_report(make_run(rows, space=space)).markdown.read_text()
    assert "**1 configuration without a ranked trial**" in md
    assert "`model.pe_type=none, model.is_causal=false, train.lr=0.001, model.n_embd=64`" in md
    assert "## Which parameters matter" in md  # the rest of the report is still there


def test_a_positive_metrics_interval_never_dips_below_zero(tmp_path: Path) -> None:
    import pandas as pd

    from abl.results.effects import marginal_effects
    from abl.results.plots import plot_effect

    # two seeds per value, far apart: the arithmetic t-interval of "a" reaches below zero
    trials = pd.DataFrame(
        {"status": ["completed"] * 4, "p": ["a", "a", "b", "b"], "m": [0.1, 0.5, 0.6, 0.61]}
    )
    (effect,) = marginal_effects(trials, ["p"], "m", "min")
    assert effect.table["ci_low"].min() < 0
    svg = plot_effect(effect, "m", tmp_path / "e.png").with_suffix(".svg").read_text()
    assert "geometric mean, 95% t-interval of log" in svg  # less than a decade: a linear axis
