"""Next-value prediction on a univariate time series, synthetic or read from a CSV column.

The series is split in time order (the last ``val_fraction`` is validation), normalized with
the training split's mean and std, and cut into windows: input ``x[t:t+T]``, target
``x[t+1:t+T+1]``. The final metrics predict the validation series in its original units.
The synthetic series is drawn from ``data.seed``, not the trial seed: every trial of a sweep
trains and is scored on the same series.

Targets are next steps, so a non-causal model sees the target of position ``t`` at ``t + 1``:
``val/loss`` (every position) is leaky for it, ``val/loss_last`` (the last position, whose
target lies outside the window) is not.

Example::

    from abl.trainables.config import build
    cfg = build(TimeSeriesTask.Config, {"source": "csv", "path": "data/y+w.csv"}, section="data")
    task = TimeSeriesTask(cfg, seed=0)
    x, y = next(task.batches("train", 64))  # (64, 32, 1) each
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from abl.errors import AblError, did_you_mean, one_of
from abl.trainables.tasks.base import Split, Task, TaskInfo
from abl.trainables.tasks.configs import TimeSeriesConfig

_EVAL_CHUNK = 1024  # windows per forward pass in final_metrics


def synthetic_series(length: int, noise: float, seed: int) -> np.ndarray:
    """Level + trend + two seasonal components + Gaussian noise, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    amp = 10.0
    level = rng.uniform(50.0, 150.0)
    trend = rng.uniform(-0.01, 0.01) * t
    phase1, phase2 = rng.uniform(0.0, 2 * math.pi, size=2)
    season = amp * np.sin(2 * math.pi * t / 24 + phase1)
    season += 0.5 * amp * rng.uniform(0.5, 1.5) * np.sin(2 * math.pi * t / 100 + phase2)
    return level + trend + season + noise * amp * rng.standard_normal(length)


REAL_SERIES = {"co2": ("co2", "co2"), "sunspots": ("sunspots", "SUNACTIVITY")}


def real_series(name: str) -> np.ndarray:
    """A real series that statsmodels ships (no download); gaps are filled forward."""
    import statsmodels.api as sm

    dataset, column = REAL_SERIES[name]
    frame = getattr(sm.datasets, dataset).load_pandas().data
    values = frame[column].ffill().bfill().to_numpy(dtype=np.float64)
    return values


def read_csv_column(path: str, column: str) -> np.ndarray:
    """Column ``column`` of CSV file ``path`` as floats; an empty name picks the last numeric one."""
    file = Path(path)
    if not path or not file.is_file():
        raise AblError(
            f"path must be an existing CSV file when source=csv; got '{path}' (data.path)"
        )
    with file.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0]:
        raise AblError(f"CSV file must start with a header row; '{path}' is empty (data.path)")
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if any(c.strip() for c in r)]
    if column:
        if column not in header:
            raise AblError(
                f"column must be one of {one_of(header)}; got '{column}'"
                f"{did_you_mean(column, header)} (data.column, {path})"
            )
        index = header.index(column)
    else:
        numeric = [i for i in range(len(header)) if _parses(body, i)]
        if not numeric:
            raise AblError(
                f"CSV file must have a numeric column; none of {one_of(header)} is ({path})"
            )
        index = numeric[-1]
    values = []
    for line, row in enumerate(body, start=2):
        cell = row[index].strip() if index < len(row) else ""
        try:
            values.append(float(cell))
        except ValueError:
            raise AblError(
                f"column '{header[index]}' must hold numbers; line {line} has '{cell}' ({path})"
            ) from None
    return np.asarray(values, dtype=np.float64)


def _parses(body: list[list[str]], index: int) -> bool:
    try:
        for row in body:
            float(row[index])
    except (ValueError, IndexError):
        return False
    return bool(body)


class TimeSeriesTask(Task):
    """Forecast the next value of a univariate series at every position of a window.

    Attributes: ``series`` (original units, float64), ``n_train`` (length of the training
    split), ``mean`` and ``std`` (normalization of the training split).
    """

    Config = TimeSeriesConfig
    metrics = TimeSeriesConfig.task_metrics
    smoke: ClassVar[dict[str, Any]] = {"data.length": 300, "data.time_steps": 16}
    next_step_targets = TimeSeriesConfig.task_next_step_targets

    def __init__(self, cfg: TimeSeriesConfig, *, seed: int) -> None:
        super().__init__(cfg, seed=seed)
        if cfg.source == "csv":
            self.series = read_csv_column(cfg.path, cfg.column)
        elif cfg.source in REAL_SERIES:
            self.series = real_series(cfg.source)
        else:
            self.series = synthetic_series(cfg.length, cfg.noise, cfg.seed)
        n = len(self.series)
        n_val = round(n * cfg.val_fraction)
        self.n_train = n - n_val
        if min(self.n_train, n_val) < cfg.time_steps + 1:
            where = {"csv": cfg.path, "synthetic": "data.length"}.get(
                cfg.source, f"source {cfg.source}"
            )
            raise AblError(
                f"each split needs at least time_steps + 1 = {cfg.time_steps + 1} values; "
                f"{n} values with val_fraction={cfg.val_fraction} give {self.n_train} train / "
                f"{n_val} val ({where}, data.time_steps)"
            )
        train = self.series[: self.n_train]
        self.mean = float(train.mean())
        std = float(train.std())
        self.std = std if std > 0 else 1.0
        norm = torch.from_numpy((self.series - self.mean) / self.std).float()
        self._data: dict[str, Tensor] = {"train": norm[: self.n_train], "val": norm[self.n_train :]}
        self.info = TaskInfo(input_dim=1, output_dim=1, block_size=cfg.time_steps)

    def batches(
        self, split: Split, batch_size: int, *, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(x, y)`` float32 windows of shape ``(B, T, 1)``, ``y`` shifted one step ahead."""
        windows = self._data[split].unfold(0, self.cfg.time_steps + 1, 1)  # (N, T+1), a view
        n = windows.shape[0]
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        for start in range(0, n, batch_size):
            w = windows[order[start : start + batch_size]].unsqueeze(-1)  # a copy
            yield w[:, :-1], w[:, 1:]

    @torch.no_grad()
    def final_metrics(self, model: torch.nn.Module) -> dict[str, float]:
        """One-step (teacher-forced) and autoregressive MSE on the validation split, original units."""
        was_training = model.training
        model.eval()
        device = next(iter(model.parameters()), torch.empty(0)).device
        val = self._data["val"].to(device)
        try:
            batch = self._mse(self._predict_windows(model, val), val[self.cfg.time_steps :])
            steps = min(self.cfg.rollout, len(val) - self.cfg.time_steps)
            rollout = self._rollout(model, val[: self.cfg.time_steps], steps)
            regressive = self._mse(rollout, val[self.cfg.time_steps : self.cfg.time_steps + steps])
        finally:
            model.train(was_training)
        return {"predict/mse_batch": batch, "predict/mse_regressive": regressive}

    def _predict_windows(self, model: torch.nn.Module, val: Tensor) -> Tensor:
        """The last-position prediction of every validation window that has a next value."""
        inputs = val.unfold(0, self.cfg.time_steps, 1)[:-1]
        preds = [
            model(inputs[i : i + _EVAL_CHUNK].unsqueeze(-1))[:, -1, 0]
            for i in range(0, inputs.shape[0], _EVAL_CHUNK)
        ]
        return torch.cat(preds)

    def _rollout(self, model: torch.nn.Module, window: Tensor, steps: int) -> Tensor:
        """Predict ``steps`` values, feeding each prediction back as the newest input."""
        preds = []
        for _ in range(steps):
            nxt = model(window.view(1, -1, 1))[0, -1]  # shape (1,)
            preds.append(nxt)
            window = torch.cat((window[1:], nxt))
        return torch.cat(preds)

    def _mse(self, pred: Tensor, true: Tensor) -> float:
        """Mean squared error after undoing the normalization."""
        return float(((pred.double() - true.double()) ** 2).mean()) * self.std**2
