"""Resume changes nothing: a trial restored from a checkpoint reports what an uninterrupted one
reports, epoch by epoch, for every registered trainable (curricula, dropout, spike restarts)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest
import torch

from abl.trainables.loop import CHECKPOINT_FILE, train
from abl.trainables.models import MODELS
from abl.trainables.spec import TRAINABLES
from abl.trainables.tasks import TASKS

EPOCHS, SPLIT = 4, 2  # train 4 epochs; the interrupted trial stops after 2 and resumes
# Seed 5 at this (cosine) learning rate is best at epoch 1 and spikes at epochs 2 and 3: the
# first epoch after the split goes back to the best epoch before it, from the checkpoint.
SPIKY = {"train.restart_on_spike": 1.0001, "train.lr": 0.1, "seed": 5}


class Interrupted(Exception):
    """Raised by the report callback: the trial is killed right after a checkpoint."""


def config_of(name: str, extra: dict[str, Any]) -> dict[str, Any]:
    spec = TRAINABLES.get(name)
    kind = extra.get("model.kind", spec.default_model)
    smoke = {**TASKS.get(spec.task).smoke, **MODELS.get(kind).smoke}
    # two steps an epoch keep it fast; the smoke curricula (linreg, looped) move every 2 steps
    fast = {"train.epochs": EPOCHS, "train.steps_per_epoch": 2, "train.batch_size": 16, "seed": 3}
    fast["train.checkpoint_every_s"] = 0  # a checkpoint at every epoch, to resume from each
    return {**smoke, **fast, **extra}


def run(
    name: str, config: dict[str, Any], *, stop_after: int = 0, restore: dict | None = None
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """Reports (without perf/*) and the checkpoint state saved at every epoch."""
    reports: list[dict[str, Any]] = []
    states: dict[int, dict[str, Any]] = {}

    def report(metrics: dict[str, Any], ckpt: str | None) -> None:
        reports.append({k: v for k, v in metrics.items() if not k.startswith("perf/")})
        assert ckpt is not None
        path = os.path.join(ckpt, CHECKPOINT_FILE)
        states[metrics["epoch"]] = torch.load(path, weights_only=False)
        if metrics["epoch"] == stop_after:
            raise Interrupted

    with contextlib.suppress(Interrupted):
        train(config, trainable=TRAINABLES.get(name), report=report, restore=restore)
    return reports, states


CASES = [(name, {}) for name in TRAINABLES.names()] + [
    ("forecast", SPIKY),  # restarts after the split go back to a best epoch before it
    ("charlm", {"model.kind": "gpt", "model.dropout": 0.2}),  # dropout draws the global RNG
    ("copy", {"model.latent_noise": 0.5, "model.dropout": 0.2}),
]


@pytest.mark.parametrize(("name", "extra"), CASES, ids=[f"{n}{'+' if e else ''}" for n, e in CASES])
def test_a_resumed_trial_reports_what_an_uninterrupted_one_reports(
    name: str, extra: dict[str, Any]
) -> None:
    config = config_of(name, extra)
    full, _ = run(name, config)
    first, states = run(name, config, stop_after=SPLIT)
    assert len(full) == EPOCHS and first == full[:SPLIT]
    rest, _ = run(name, config, restore=states[SPLIT])
    assert [m["epoch"] for m in rest] == list(range(SPLIT + 1, EPOCHS + 1))
    for uninterrupted, resumed in zip(full[SPLIT:], rest, strict=True):
        assert resumed == uninterrupted
    if extra is SPIKY:  # the case must exercise the checkpointed best epoch
        assert "train/restarts" in full[SPLIT], full
        best = min(full[:SPLIT], key=lambda m: m["val/loss"])["val/loss"]
        assert states[SPLIT]["best"]["loss"] == best


def assert_same(a: dict[Any, Any], b: dict[Any, Any]) -> None:
    """Nested state dicts with equal keys and bitwise-equal tensors."""
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, dict):
            assert_same(value, b[key])
        else:
            assert torch.equal(value, b[key]), key


def test_a_spike_restores_the_best_epochs_weights_and_optimizer_moments() -> None:
    reports, states = run("forecast", config_of("forecast", SPIKY))
    restarts = [m["epoch"] for m in reports if "train/restarts" in m]
    assert restarts, reports
    assert len(restarts) >= 2  # the second goes back to a best that training went on from
    for epoch in restarts:
        state = states[epoch]
        best = state["best"]
        assert best["loss"] < reports[epoch - 1]["val/loss"]
        # the best is still the checkpoint of the epoch it came from, untouched by training
        best_epoch = min(reports[:epoch], key=lambda m: m["val/loss"])["epoch"]
        assert best["loss"] == reports[best_epoch - 1]["val/loss"]
        assert_same(best["model"], states[best_epoch]["model"])
        assert_same(best["opt"]["state"], states[best_epoch]["opt"]["state"])
        # ... and the spike put its weights and moments (exp_avg, exp_avg_sq, step) back
        assert_same(state["model"], best["model"])
        assert_same(state["opt"]["state"], best["opt"]["state"])
        # the learning rate is today's, from the schedule, not the best epoch's
        assert state["opt"]["param_groups"][0]["lr"] == reports[epoch - 1]["lr"]
        assert best["opt"]["param_groups"][0]["lr"] != reports[epoch - 1]["lr"]


def test_checkpoints_come_every_checkpoint_every_s_and_after_the_last_epoch() -> None:
    """By default a trial checkpoints when checkpoint_every_s seconds have passed since the
    last one, and after its last epoch; 0 checkpoints after every epoch."""
    saved: dict[float, list[int]] = {}
    for every in (0.0, 3600.0):
        config = {**config_of("forecast", {}), "train.checkpoint_every_s": every}
        epochs = saved.setdefault(every, [])

        def report(metrics: dict[str, Any], ckpt: str | None, into: list[int] = epochs) -> None:
            if ckpt is not None:
                into.append(metrics["epoch"])

        train(config, trainable=TRAINABLES.get("forecast"), report=report)
    assert saved[0.0] == list(range(1, EPOCHS + 1))
    assert saved[3600.0] == [EPOCHS]


def test_every_checkpoint_carries_the_resolved_trial_config() -> None:
    config = config_of("forecast", {"model.pe_type": "rope", "train.lr": 1})
    _, states = run("forecast", config)
    full = TRAINABLES.get("forecast").resolve(config, "test")
    assert [state["config"] for state in states.values()] == [full] * EPOCHS
    saved = states[EPOCHS]["config"]
    assert saved["model.pe_type"] == "rope" and saved["model.kind"] == "att"
    assert saved["train.lr"] == 1.0 and isinstance(saved["train.lr"], float)
    assert saved["data.rollout"] == 50  # defaults are there too: the full flat config
