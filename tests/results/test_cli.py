"""``abl report``, ``abl top`` and ``abl compare`` through click's CliRunner on real run dirs."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from abl.cli import main
from tests.results.synthetic import trial

CONFIG = {"model.pe_type": "rope", "model.is_causal": True, "train.lr": 1e-3, "model.n_embd": 64}


def abl(root: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--root", str(root), *args])


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abl: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_report_by_sweep_name(grid_run: Path) -> None:
    root = grid_run.parent.parent
    result = abl(root, "report", "synthetic", "--pair", "model.pe_type,model.n_embd", "-k", "3")
    assert result.exit_code == 0, result.output
    assert f"report   {grid_run / 'report.md'}" in result.stdout
    assert "anova: model.pe_type" in result.stdout
    assert "## Top 3 of 72" in (grid_run / "report.md").read_text()
    assert (grid_run / "plots" / "heatmap_model.pe_type__model.n_embd.png").is_file()


def test_top_with_metric_and_by(grid_run: Path) -> None:
    result = abl(
        grid_run.parent.parent,
        "top",
        str(grid_run),
        "-k",
        "2",
        "--metric",
        "train/loss",
        "--by",
        "model.pe_type",
    )
    assert result.exit_code == 0, result.output
    assert "top 2 per model.pe_type of 72 by train/loss (min)" in result.stdout
    assert result.stdout.count(" rope ") == 2 and result.stdout.count(" none ") == 2


def test_top_counts_what_it_did_not_rank(make_run: Callable[..., Path]) -> None:
    rows = [
        trial(0, CONFIG, 1.0),
        trial(1, CONFIG, 2.0, status="pruned"),
        trial(2, CONFIG, None, status="errored"),
    ]
    run = make_run(rows)
    result = abl(run.parent.parent, "top", str(run))
    assert result.exit_code == 0, result.output
    assert "not ranked: 1 pruned, 1 failed" in result.stdout


def test_compare_two_runs(grid_run: Path, make_run: Callable[..., Path]) -> None:
    other = make_run([trial(0, CONFIG, 1.0)], space={"name": "synthetic", "trainable": "other"})
    result = abl(grid_run.parent.parent, "compare", str(grid_run), str(other), "-k", "2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "space: what changed" in out and "trainable" in out and "other" in out
    assert "best value of every metric" in out and "top 2 by val/loss (min)" in out
    same = abl(grid_run.parent.parent, "compare", str(grid_run), str(grid_run))
    assert "space: identical" in same.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["report", "nosuch"], ["sweep name under", "got 'nosuch'"]),
        (
            ["top", "synthetic", "--metric", "val/los"],
            ["metric must be one of val/loss", "did you mean 'val/loss'"],
        ),
        (
            ["report", "synthetic", "--by", "model.pe"],
            ["parameter must be one of those the sweep varies", "got 'model.pe'"],
        ),
        (["compare", "synthetic", "nosuch"], ["got 'nosuch'"]),
    ],
)
def test_mistakes_are_one_line_errors(
    grid_run: Path, args: list[str], fragments: list[str]
) -> None:
    assert_one_line_error(abl(grid_run.parent.parent, *args), *fragments)


def test_report_prints_its_conclusion_with_intervals_and_p_values(grid_run: Path) -> None:
    result = abl(grid_run.parent.parent, "report", str(grid_run))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    (anova,) = [line for line in lines if line.strip().startswith("anova:")]
    # the planted pe_type effect: its share, the seed-resampling interval, the F-test's p
    assert re.search(r"model\.pe_type \d+% \[\d+, \d+\] \(p<0\.001\)", anova), anova
    assert any(line.startswith("  model.pe_type: ") and "Holm p" in line for line in lines)
