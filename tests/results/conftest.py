"""Fixtures: synthetic run directories (see tests/results/synthetic.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.results.synthetic import GRID, grid_trials, history_of, write_run


@pytest.fixture
def grid_run(tmp_path: Path) -> Path:
    """A full 3x2x2x2 grid with 3 seeds, MLflow links and history."""
    rows = grid_trials()
    for row in rows:
        row["mlflow_run_id"] = f"run{row['trial_id']}"
    space = {"name": "synthetic", "trainable": "forecast", "grid": GRID, "repeats": 3}
    mlflow = {
        "tracking_uri": "sqlite:///abl-runs/mlflow.db",
        "experiment_id": "7",
        "parent_run_id": "p",
    }
    return write_run(
        tmp_path / "root" / "synthetic" / "2025-01-10_19-00-24",
        rows,
        space=space,
        history=history_of(rows),
        mlflow=mlflow,
    )


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """``make_run(trials, **kw)``: a run directory under tmp_path/root/synthetic/."""
    counter = itertools.count()

    def make(trials: list[dict[str, Any]], **kw: Any) -> Path:
        return write_run(
            tmp_path / "root" / "synthetic" / f"2025-01-1{next(counter)}_00-00-00", trials, **kw
        )

    return make
