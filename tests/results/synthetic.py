"""Synthetic run directories, written with the store's real PartWriter and a real space.yaml."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from abl.results import HISTORY, TRIALS, PartWriter

PE = {"none": 1.0, "sinpe": 0.6, "rope": 0.0}  # planted main effect of model.pe_type
GRID = {
    "model.pe_type": list(PE),
    "model.is_causal": [True, False],
    "train.lr": [1.0e-3, 3.0e-4],
    "model.n_embd": [64, 128],
}


def planted(pe: str, causal: bool, lr: float, n_embd: int) -> float:
    """pe_type >> is_causal > the lr x n_embd interaction; n_embd has no main effect."""
    interaction = 0.25 if (lr == 1.0e-3) == (n_embd == 128) else -0.25
    return 2.0 + PE[pe] + (0.3 if causal else 0.0) + interaction


def write_run(
    run_dir: Path,
    trials: list[dict[str, Any]],
    *,
    space: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    mlflow: dict[str, Any] | None = None,
) -> Path:
    """A run directory as a sweep leaves it: space.yaml, trials.parquet, history.parquet."""
    run_dir.mkdir(parents=True, exist_ok=True)
    space = space or {"name": "synthetic", "trainable": "forecast", "grid": GRID}
    (run_dir / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    PartWriter(run_dir / TRIALS).append(trials)
    PartWriter(run_dir / HISTORY).append(history or [])
    if mlflow:
        (run_dir / "mlflow.json").write_text(json.dumps(mlflow))
    return run_dir


def trial(
    i: int, config: dict[str, Any], loss: float | None, status: str = "completed", **extra: Any
) -> dict[str, Any]:
    """One trials.parquet row."""
    return {
        "trial_id": f"t{i:05d}",
        "status": status,
        "start": 1000.0 + i,
        "end": 1010.0 + i,
        "wall_s": 10.0,
        "node": "local",
        "error": extra.pop("error", None),
        "steps": 3,
        "mlflow_run_id": extra.pop("mlflow_run_id", None),
        "seed": extra.pop("seed", 0),
        **config,
        "val/loss": loss,
        "train/loss": None if loss is None else loss * 0.9,
        "best/val/loss": loss,
        **extra,
    }


def grid_trials(repeats: int = 3, noise: float = 0.05, seed: int = 0) -> list[dict[str, Any]]:
    """Every cell of GRID ``repeats`` times with the planted effects plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    rows = []
    cells = list(itertools.product(*GRID.values()))
    for r, cell in itertools.product(range(repeats), cells):
        config = dict(zip(GRID, cell, strict=True))
        loss = planted(*cell) + rng.normal(0, noise)
        rows.append(trial(len(rows), config, loss, seed=r))
    return rows


def history_of(trials: list[dict[str, Any]], steps: int = 3) -> list[dict[str, Any]]:
    """A decreasing curve per trial ending at its val/loss."""
    return [
        {
            "trial_id": t["trial_id"],
            "step": s,
            "time": float(s),
            "val/loss": t["val/loss"] * (1 + (steps - s) / steps),
            "train/loss": t["val/loss"] * (1 + (steps - s) / steps) * 0.9,
        }
        for t in trials
        if t["val/loss"] is not None
        for s in range(1, steps + 1)
    ]


def planted_trials(
    grid: dict[str, list[Any]],
    effect: Callable[[dict[str, Any]], float],
    *,
    repeats: int = 3,
    noise: float = 0.05,
    seed_spread: float = 0.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Every cell of ``grid`` once per seed: ``effect(config)`` plus a per-seed offset shared
    by every cell (common random numbers: the same validation data and init seed) plus noise."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0, seed_spread, repeats) if seed_spread else np.zeros(repeats)
    rows: list[dict[str, Any]] = []
    for r, cell in itertools.product(range(repeats), itertools.product(*grid.values())):
        config = dict(zip(grid, cell, strict=True))
        loss = 2.0 + effect(config) + offsets[r] + rng.normal(0, noise)
        rows.append(trial(len(rows), config, float(loss), seed=r))
    return rows
