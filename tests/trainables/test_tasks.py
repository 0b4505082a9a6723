"""Every registered task is seeded; the time-series task's windows, CSV source and metrics."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from abl.errors import AblError
from abl.trainables.config import build
from abl.trainables.models.forecast import AttentionForecaster
from abl.trainables.tasks import TASKS
from abl.trainables.tasks.base import Task
from abl.trainables.tasks.timeseries import TimeSeriesTask


def make(name: str, seed: int = 0, data_seed: int = 0, **values: Any) -> Task:
    """Task ``name`` of trial seed ``seed`` and ``data.seed`` = ``data_seed``."""
    cls = TASKS.get(name)
    return cls(build(cls.Config, {"seed": data_seed, **values}, section="data"), seed=seed)


def ts(seed: int = 0, **values: Any) -> TimeSeriesTask:
    return TimeSeriesTask(build(TimeSeriesTask.Config, values, section="data"), seed=seed)


def first_batch(task: Task, split: str = "train") -> torch.Tensor:
    x, _ = next(iter(task.batches(split, 16)))
    return x


@pytest.mark.parametrize("name", TASKS.names())
def test_same_seed_same_batches(name: str) -> None:
    a, b = make(name, seed=3), make(name, seed=3)
    for split in ("train", "val"):
        for (xa, ya), (xb, yb) in zip(a.batches(split, 16), b.batches(split, 16), strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    xa, _ = next(iter(a.batches("train", 16, generator=gen_a)))
    xb, _ = next(iter(b.batches("train", 16, generator=gen_b)))
    assert torch.equal(xa, xb)


@pytest.mark.parametrize("name", TASKS.names())
def test_different_data_seed_different_data(name: str) -> None:
    other = make(name, data_seed=1)
    assert not torch.equal(first_batch(make(name), "val"), first_batch(other, "val"))


def test_windows_are_float32_and_target_is_input_shifted_by_one() -> None:
    task = ts(time_steps=12, length=300)
    batches = list(task.batches("train", 32))
    x, y = batches[0]
    assert x.dtype == y.dtype == torch.float32
    assert x.shape == y.shape == (32, 12, 1)
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(x[1:], y[:-1])  # window i+1 is the target of window i
    assert sum(b[0].shape[0] for b in batches) == task.n_train - 12


def test_shuffling_only_with_a_generator() -> None:
    task = ts(time_steps=8, length=300)
    plain = torch.cat([x for x, _ in task.batches("train", 50)])
    shuffled = torch.cat([x for x, _ in task.batches("train", 50, generator=torch.Generator())])
    assert not torch.equal(plain, shuffled)
    assert torch.equal(plain[:, 0, 0].sort().values, shuffled[:, 0, 0].sort().values)


def test_normalized_with_training_split_statistics() -> None:
    task = ts(length=500)
    train = task.series[: task.n_train]
    assert math.isclose(task.mean, train.mean()) and math.isclose(task.std, train.std())
    assert abs(task.mean) > 1.0  # a level, like real data


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    return path


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    rows = [["date", "a", "b"]]
    rows += [[f"d{i}", str(i), str(100 + 2 * i)] for i in range(100)]
    return write_csv(tmp_path / "series.csv", rows)


def test_csv_reads_named_column_and_defaults_to_last_numeric(csv_file: Path) -> None:
    a = ts(source="csv", path=str(csv_file), column="a", time_steps=4)
    assert np.array_equal(a.series, np.arange(100.0))
    b = ts(source="csv", path=str(csv_file), time_steps=4)
    assert np.array_equal(b.series, 100 + 2 * np.arange(100.0))
    x, y = next(iter(a.batches("train", 8)))
    assert torch.allclose(y - x, torch.full_like(x, 1 / a.std))


def test_csv_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(AblError, match=r"nope\.csv.*data\.path"):
        ts(source="csv", path=str(missing))


def test_csv_unknown_column_lists_the_columns(csv_file: Path) -> None:
    with pytest.raises(AblError, match=r"column must be one of date, a, b; got 'x'.*series\.csv"):
        ts(source="csv", path=str(csv_file), column="x")


def test_csv_non_numeric_value_names_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", [["v"], ["1"], ["2"], ["oops"]])
    with pytest.raises(AblError, match=r"line 4 has 'oops'.*bad\.csv"):
        ts(source="csv", path=str(path), column="v", time_steps=1)


def test_series_too_short_for_time_steps(csv_file: Path) -> None:
    with pytest.raises(AblError, match=r"time_steps"):
        ts(source="csv", path=str(csv_file), time_steps=40)


class Persistence(torch.nn.Module):
    """Predicts that the next value equals the current one."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_final_metrics_are_in_original_units() -> None:
    task = ts(length=400, time_steps=10, rollout=7)
    val = task.series[task.n_train :]
    metrics = task.final_metrics(Persistence())
    assert math.isclose(metrics["predict/mse_batch"], np.mean(np.diff(val)[9:] ** 2), rel_tol=1e-4)
    expected = np.mean((val[10:17] - val[9]) ** 2)
    assert math.isclose(metrics["predict/mse_regressive"], expected, rel_tol=1e-4)


def test_final_metrics_finite_for_a_fresh_attention_forecaster() -> None:
    task = ts(length=300, time_steps=16, rollout=5)
    cfg = build(AttentionForecaster.Config, {"d_model": 16}, section="model")
    model = AttentionForecaster(cfg, task.info)
    metrics = task.final_metrics(model)
    assert set(metrics) == set(task.metrics)
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert model.training  # restored after evaluation
