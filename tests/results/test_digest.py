"""Nightly rules on synthetic run directories: regressions (% and seed std), top change,
importance flip, failed sweeps, and the digest files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from abl.results.digest import BEST, Rule, Rules, compare_nightly, write_digest
from tests.results.synthetic import GRID, grid_trials

SPACE = {"name": "synthetic", "trainable": "forecast", "grid": GRID, "repeats": 3}
ROPE_ARM = "model.pe_type=rope model.is_causal=false train.lr=0.0003 model.n_embd=128"


def shifted(
    rows: list[dict[str, Any]], by: Callable[[dict[str, Any]], float]
) -> list[dict[str, Any]]:
    """The same trials with ``val/loss`` changed by ``by(row)``."""
    return [{**r, "val/loss": r["val/loss"] + by(r)} for r in rows]


@pytest.fixture
def baseline(make_run) -> tuple[Path, list[dict[str, Any]]]:
    rows = grid_trials(repeats=3, noise=0.05)
    return make_run(rows, space=SPACE), rows


def rules_fired(digest) -> list[Rule]:
    return [f.rule for f in digest.findings]


def test_an_identical_rerun_fires_nothing(make_run, baseline):
    prev, rows = baseline
    digest = compare_nightly(prev, make_run(rows, space=SPACE), Rules())
    assert digest.findings == [] and not digest.fired
    assert len(digest.arms) == 24 + 1 and digest.arms["arm"].iloc[0] == BEST
    assert (digest.arms["worse_pct"].abs() < 1e-9).all() and (digest.arms["n"] == 3).all()


def test_the_first_nightly_is_a_baseline(baseline):
    prev, _ = baseline
    digest = compare_nightly(None, prev, Rules())
    assert not digest.fired and "baseline" in digest.notes[0] and digest.arms.empty


def test_one_arm_worse_by_more_than_the_percentage_is_named(make_run, baseline):
    prev, rows = baseline
    worse = shifted(rows, lambda r: 0.2 * r["val/loss"] if _is_rope_arm(r) else 0.0)
    digest = compare_nightly(prev, make_run(worse, space=SPACE), Rules(regression_std=None))
    regressions = [f.message for f in digest.findings if f.rule == Rule.REGRESSION]
    assert any(m.startswith(f"{ROPE_ARM}: val/loss") and "+20.0% worse" in m for m in regressions)
    assert all("> 5%" in m for m in regressions)
    quiet = compare_nightly(
        prev, make_run(worse, space=SPACE), Rules(regression_pct=25, regression_std=None)
    )
    assert Rule.REGRESSION not in rules_fired(quiet)


def test_a_shift_of_a_few_seed_std_fires_the_std_rule_alone(make_run, baseline):
    prev, rows = baseline
    worse = shifted(rows, lambda r: 0.5 if _is_rope_arm(r) else 0.0)  # noise std is 0.05
    digest = compare_nightly(
        prev, make_run(worse, space=SPACE), Rules(regression_pct=None, regression_std=3)
    )
    (finding,) = [f for f in digest.findings if f.rule == Rule.REGRESSION]
    assert finding.message.startswith(ROPE_ARM) and "> 3 seed std" in finding.message
    row = digest.arms.set_index("arm").loc[ROPE_ARM]
    assert row["worse_std"] > 3 and row["change"] == pytest.approx(0.5)


def test_the_best_arm_is_compared_too(make_run, baseline):
    prev, rows = baseline
    digest = compare_nightly(prev, make_run(shifted(rows, lambda r: 1.0), space=SPACE), Rules())
    assert any(f.message.startswith(f"{BEST}: val/loss") for f in digest.findings)


def test_a_new_top_configuration_fires(make_run, baseline):
    prev, rows = baseline
    # sinpe now beats rope in every cell: the best arm is another configuration.
    better = shifted(rows, lambda r: -1.0 if r["model.pe_type"] == "sinpe" else 0.0)
    digest = compare_nightly(prev, make_run(better, space=SPACE), Rules())
    (finding,) = [f for f in digest.findings if f.rule == Rule.TOP_CHANGED]
    assert finding.message.startswith("top configuration changed: model.pe_type=rope")
    assert "-> model.pe_type=sinpe" in finding.message
    assert Rule.REGRESSION not in rules_fired(digest)  # better is no regression
    assert Rule.TOP_CHANGED not in rules_fired(
        compare_nightly(prev, make_run(better, space=SPACE), Rules(top_changed=False))
    )


def test_an_importance_ranking_flip_fires(make_run, baseline):
    prev, rows = baseline
    # is_causal now moves the metric far more than pe_type does (it was the other way round).
    flipped = shifted(rows, lambda r: 3.0 if r["model.is_causal"] else 0.0)
    digest = compare_nightly(
        prev, make_run(flipped, space=SPACE), Rules(regression_pct=None, regression_std=None)
    )
    (finding,) = [f for f in digest.findings if f.rule == Rule.IMPORTANCE_FLIP]
    assert "model.pe_type > " in finding.message and "-> model.is_causal > " in finding.message
    assert Rule.IMPORTANCE_FLIP not in rules_fired(
        compare_nightly(prev, make_run(flipped, space=SPACE), Rules(importance_flip=False))
    )


def test_an_arm_that_lost_its_results_is_a_regression(make_run, baseline):
    prev, rows = baseline
    broken = [
        {**r, "status": "errored", "val/loss": None, "error": "boom"} if _is_rope_arm(r) else r
        for r in rows
    ]
    digest = compare_nightly(prev, make_run(broken, space=SPACE), Rules())
    messages = [f.message for f in digest.findings if f.rule == Rule.REGRESSION]
    assert f"{ROPE_ARM}: no completed trial now" in " ".join(messages)


def test_a_run_without_a_completed_trial_is_a_failed_sweep(make_run, baseline):
    prev, rows = baseline
    dead = [{**r, "status": "errored", "val/loss": None} for r in rows]
    digest = compare_nightly(prev, make_run(dead, space=SPACE), Rules())
    assert rules_fired(digest) == [Rule.SWEEP_FAILED]


def test_mode_max_treats_a_drop_as_the_regression(make_run, baseline):
    _, rows = baseline
    space = {**SPACE, "mode": "max"}
    prev = make_run(rows, space=space)
    assert not compare_nightly(
        prev, make_run(shifted(rows, lambda r: 1.0), space=space), Rules()
    ).findings
    digest = compare_nightly(prev, make_run(shifted(rows, lambda r: -1.0), space=space), Rules())
    assert Rule.REGRESSION in rules_fired(digest)


def test_unknown_rule_values_are_rejected():
    with pytest.raises(ValidationError, match="must be one of anova"):
        Rules(importance_method="anvoa")
    with pytest.raises(ValidationError, match="extra"):
        Rules.model_validate({"regresion_pct": 5})


def test_the_digest_files_name_every_finding(make_run, baseline, tmp_path):
    prev, rows = baseline
    worse = compare_nightly(prev, make_run(shifted(rows, lambda r: 1.0), space=SPACE), Rules())
    fine = compare_nightly(None, prev, Rules())
    paths = write_digest([worse, fine], tmp_path / "digest", title="nightly 2025-01-01_02-00-00")
    markdown = paths.markdown.read_text()
    assert markdown.splitlines()[0].startswith("# nightly 2025-01-01_02-00-00: ")
    assert f"**regression**: {BEST}: val/loss" in markdown
    assert "<b>regression</b>" in paths.html.read_text()
    data = json.loads(paths.json.read_text())
    assert data["fired"] is True and [s["fired"] for s in data["spaces"]] == [True, False]
    assert data["spaces"][0]["arms"][0]["arm"] == BEST


def _is_rope_arm(row: dict[str, Any]) -> bool:
    return (
        row["model.pe_type"] == "rope"
        and not row["model.is_causal"]
        and row["train.lr"] == 3.0e-4
        and row["model.n_embd"] == 128
    )
