"""Leak probe: with next-step targets, val/loss_last gives a model that peeks no advantage.

A forecaster that reads position t + 1 of its window (its own target at t) gets a near-zero
``val/loss`` but exactly the ``val/loss_last`` of the causal forecaster it equals at the last
position: nothing after the last input is inside the window.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from abl.trainables.config import build
from abl.trainables.loop import _evaluate, train
from abl.trainables.metrics import METRICS
from abl.trainables.models import MODELS
from abl.trainables.spec import TRAINABLES
from abl.trainables.tasks import TASKS
from abl.trainables.tasks.timeseries import TimeSeriesTask


class Persistence(nn.Module):
    """Causal: predicts that the next value equals the current one, at every position."""

    def forward(self, x: Tensor) -> Tensor:
        return x.clone()


class PeekingOracle(nn.Module):
    """Non-causal: outputs x[t + 1] (the target of t) where the window has it, else x[t]."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((x[:, 1:], x[:, -1:]), dim=1)


def test_a_model_that_peeks_wins_val_loss_but_not_val_loss_last() -> None:
    task = TimeSeriesTask(build(TimeSeriesTask.Config, {}, section="data"), seed=0)
    honest = _evaluate(Persistence(), task, 64, "cpu")
    peeking = _evaluate(PeekingOracle(), task, 64, "cpu")
    # The oracle is exact at every position but the last: val/loss shrinks about T times.
    assert peeking["val/loss"] < 0.1 * honest["val/loss"]
    assert honest["val/loss_last"] > 0.01  # persistence is far from exact on this series
    assert peeking["val/loss_last"] == honest["val/loss_last"]
    # What val/loss_last measures: the MSE of the last position's prediction, every window.
    last = torch.cat([x[:, -1] - y[:, -1] for x, y in task.batches("val", 64)])
    assert peeking["val/loss_last"] == pytest.approx(float(last.square().mean()), rel=1e-5)


@pytest.mark.parametrize("name", TRAINABLES.names())
def test_loss_last_is_reported_exactly_where_targets_are_next_steps(name: str) -> None:
    spec = TRAINABLES.get(name)
    task = TASKS.get(spec.task)
    kind = spec.default_model
    reports: list[dict] = []
    config = {**task.smoke, **MODELS.get(kind).smoke, "train.epochs": 1}
    train(config, trainable=spec, report=lambda m, _ckpt: reports.append(m))
    (report,) = reports
    assert ("val/loss_last" in report) is task.next_step_targets
    assert ("val/loss_last" in spec.metrics()) is task.next_step_targets
    assert set(report) - {"trial/status"} <= set(spec.metrics()) <= set(METRICS)
    assert spec.task not in ("timeseries", "charlm") or task.next_step_targets
