"""Trial packs: each member reports what its trial reports alone (loop.train), epoch by epoch."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from abl.trainables.loop import CHECKPOINT_FILE, train
from abl.trainables.models import MODELS
from abl.trainables.pack import train_pack
from abl.trainables.spec import TRAINABLES
from abl.trainables.tasks import TASKS

EPOCHS = 2
# Three members apart in every per-member knob: seed, lr, clip (0 = none), warmup, schedule.
MEMBERS = [
    {"seed": 0, "train.lr": 1e-3, "train.grad_clip": 1.0},
    {"seed": 1, "train.lr": 3e-3, "train.grad_clip": 0.0, "train.warmup_steps": 2},
    {"seed": 2, "train.lr": 1e-2, "train.grad_clip": 0.5, "train.schedule": "constant"},
]
RTOL, ATOL = 1e-4, 1e-6


def config_of(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    """A tiny trial: smoke data and model, two steps an epoch."""
    spec = TRAINABLES.get(name)
    smoke = {**TASKS.get(spec.task).smoke, **MODELS.get(kind).smoke}
    fast = {"train.epochs": EPOCHS, "train.steps_per_epoch": 2, "train.batch_size": 8}
    return {**smoke, **fast, "model.kind": kind, "train.checkpoint_every_s": 0, **extra}


def solo(name: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """loop.train's reports of one trial."""
    out: list[dict[str, Any]] = []
    train(config, trainable=TRAINABLES.get(name), report=lambda m, _c: out.append(m))
    return out


def packed(
    name: str,
    configs: list[dict[str, Any]],
    *,
    stop: dict[int, set[int]] | None = None,
    restore: dict[str, Any] | None = None,
) -> tuple[list[list[dict[str, Any] | None]], dict[int, dict[str, Any]]]:
    """Every report of a pack (one list per epoch) and its checkpoint by epoch; ``stop`` maps an
    epoch to the members its report stops."""
    spec = TRAINABLES.get(name)
    reports: list[list[dict[str, Any] | None]] = []
    states: dict[int, dict[str, Any]] = {}

    def report(metrics: list[dict[str, Any] | None], ckpt: str | None) -> set[int]:
        epoch = next(m["epoch"] for m in metrics if m is not None)
        reports.append(metrics)
        if ckpt is not None:
            states[epoch] = torch.load(os.path.join(ckpt, CHECKPOINT_FILE), weights_only=False)
        return (stop or {}).get(epoch, set())

    full = [spec.resolve(c, "test") for c in configs]
    train_pack(full, trainable=spec, report=report, restore=restore)
    return reports, states


def assert_close(alone: dict[str, Any], member: dict[str, Any]) -> None:
    """Same keys; equal values, floats to tolerance (perf/* are timings)."""
    assert alone.keys() == member.keys()
    for key, value in alone.items():
        if key.startswith("perf/"):
            continue
        if isinstance(value, float):
            assert member[key] == pytest.approx(value, rel=RTOL, abs=ATOL), key
        else:
            assert member[key] == value, key


def member_reports(reports: list[list[dict[str, Any] | None]], i: int) -> list[dict[str, Any]]:
    return [epoch[i] for epoch in reports if epoch[i] is not None]


PACKABLE = [("forecast", "att")]


@pytest.mark.parametrize(("name", "kind"), PACKABLE, ids=[f"{n}-{k}" for n, k in PACKABLE])
def test_each_member_reports_what_its_trial_reports_alone(name: str, kind: str) -> None:
    configs = [config_of(name, kind, **m) for m in MEMBERS]
    reports, _ = packed(name, configs)
    assert len(reports) == EPOCHS
    for i, config in enumerate(configs):
        alone = solo(name, config)
        mine = member_reports(reports, i)
        assert len(mine) == len(alone) == EPOCHS
        for a, b in zip(alone, mine, strict=True):
            assert_close(a, b)
        assert mine[-1]["trial/status"] == "completed"
