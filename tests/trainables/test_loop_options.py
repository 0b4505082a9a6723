"""The training loop's train.precision (bf16 autocast) and train.compile (torch.compile):
what they change, what they leave alone (checkpoints, resume), and their one-line mistakes."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from abl.errors import AblError
from abl.trainables.config import build
from abl.trainables.loop import CHECKPOINT_FILE, autocast, train
from abl.trainables.spec import TRAINABLES
from abl.trainables.train_config import TrainConfig

BASE = {
    "seed": 0, "train.epochs": 3, "data.length": 2000, "data.time_steps": 16,
    "model.d_model": 8, "train.checkpoint_every_s": 0,
}  # fmt: skip
COMPILE = {"train.compile": True, "train.compile_backend": "aot_eager"}


def reports(config: dict[str, Any], restore: dict[str, Any] | None = None) -> list[dict]:
    out: list[dict] = []
    states: list[dict] = []

    def report(metrics: dict[str, Any], ckpt: str | None) -> None:
        out.append(metrics)
        if ckpt is not None:
            states.append(torch.load(os.path.join(ckpt, CHECKPOINT_FILE), weights_only=False))
        metrics["_state"] = states[-1] if ckpt is not None else None

    train(config, trainable=TRAINABLES.get("forecast"), report=report, restore=restore)
    return out


def test_bf16_trains_the_same_model_in_other_rounding():
    fp32 = reports(BASE)
    bf16 = reports({**BASE, "train.precision": "bf16"})
    for a, b in zip(fp32, bf16, strict=True):
        assert b["val/loss"] != a["val/loss"]  # autocast ran the matmuls in bf16
        assert b["val/loss"] == pytest.approx(a["val/loss"], rel=2e-2)
    assert bf16[-1]["trial/status"] == "completed"
    with autocast("bf16", "cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast("fp32", "cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_a_compiled_trial_reports_what_the_eager_one_does_and_resumes_from_its_checkpoint():
    from torch._dynamo.utils import counters  # dynamo's own tally of the graphs it compiled

    eager = reports(BASE)
    counters.clear()
    compiled = reports({**BASE, **COMPILE})
    assert counters["stats"]["unique_graphs"] > 0  # the trial ran through torch.compile
    for a, b in zip(eager, compiled, strict=True):
        assert b["val/loss"] == pytest.approx(a["val/loss"], rel=1e-5)
    state = compiled[0]["_state"]
    assert not any(k.startswith("_orig_mod") for k in state["model"])  # the module's own keys
    resumed = reports({**BASE, **COMPILE}, restore=state)
    assert [r["epoch"] for r in resumed] == [2, 3]
    for a, b in zip(compiled[1:], resumed, strict=True):
        assert b["val/loss"] == pytest.approx(a["val/loss"], rel=1e-6)


@pytest.mark.parametrize(
    ("given", "key", "says"),
    [
        ({"compile_mode": "max-autotune"}, "train.compile_mode", "needs train.compile: true"),
        ({"compile_backend": "aot_eager"}, "train.compile_backend", "needs train.compile: true"),
        (
            {"compile": True, "compile_mode": "reduce-overhead", "compile_backend": "eager"},
            "train.compile_backend",
            "must be inductor with train.compile_mode reduce-overhead",
        ),
        ({"precision": "fp16"}, "train.precision", "must be one of fp32, bf16"),
    ],
)
def test_option_mistakes_are_one_line(given: dict[str, Any], key: str, says: str):
    with pytest.raises(AblError) as info:
        build(TrainConfig, given, section="train")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{key} {says}"), message
