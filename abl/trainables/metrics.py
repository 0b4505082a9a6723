"""What every built-in metric means: its direction, and whether an arm can cheat on it.

This module imports nothing heavy (no torch), so reports, ``abl compare`` and the progress line
read it on the driver without loading a model.

Example::

    from abl.trainables.metrics import metric_info
    metric_info("val/loss_last").mode          # 'min'
    metric_info("perf/samples_per_s").mode     # None: a measurement, never ranked or bolded
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["min", "max"]
# A report's own step, when its trainable numbers its reports itself (a command trial's epoch,
# say): abl's step for that report, which a restarted trial then gives again; else abl counts.
STEP_KEY = "trial/step"


@dataclass(frozen=True)
class MetricInfo:
    """One reported metric."""

    name: str
    mode: Mode | None  # better is lower ("min") or higher ("max"); None = not a score
    description: str
    # True when a model without a causal mask can see the targets it is scored on (next-step
    # targets aligned with the inputs): such a metric must not rank arms that differ in causality.
    peeks_without_causal_mask: bool = False
    once: bool = False  # the same at every report of a trial: MLflow gets it once per run


_BUILTIN = (
    MetricInfo(
        "train/loss",
        "min",
        "mean training loss of the epoch, every position",
        peeks_without_causal_mask=True,
    ),
    MetricInfo(
        "val/loss",
        "min",
        "validation loss over every position of a window; with next-step targets a non-causal "
        "position sees its own target",
        peeks_without_causal_mask=True,
    ),
    MetricInfo(
        "val/loss_last",
        "min",
        "validation loss at the last position of each window only: nothing after it is inside "
        "the window, so no arm can see its target",
    ),
    MetricInfo("epoch", None, "epochs trained so far"),
    MetricInfo("lr", None, "learning rate after the epoch"),
    MetricInfo("perf/samples_per_s", None, "training throughput of the epoch"),
    MetricInfo(
        "perf/flops_per_s",
        None,
        "model FLOP/s (forward and backward, counted by torch's FlopCounterMode at the first "
        "step) the trial's job achieved; a pack's: every member's samples together",
    ),
    MetricInfo(
        "perf/mfu",
        None,
        "perf/flops_per_s over the device's peak ($ABL_PEAK_FLOPS, or a known GPU's fp32 "
        "peak); reported only where the peak is known",
    ),
    MetricInfo("perf/torch_threads", None, "torch threads the trial ran with", once=True),
    MetricInfo("perf/cuda", None, "1 when the trial trained on a GPU", once=True),
    MetricInfo("model/params", None, "trainable parameters", once=True),
    MetricInfo("train/restarts", None, "reloads of the best weights after a loss spike"),
    MetricInfo(
        "predict/mse_batch",
        "min",
        "one-step MSE of the last position of every validation window, original units",
    ),
    MetricInfo(
        "predict/mse_regressive",
        "min",
        "MSE of the autoregressive rollout (each prediction fed back), original units",
    ),
    MetricInfo("val/acc_token", "max", "share of answer tokens predicted exactly"),
    MetricInfo("val/acc_seq", "max", "share of answers predicted exactly, every token"),
    MetricInfo("curriculum/acc_seq", "max", "exact-match accuracy at the curriculum's lengths"),
    MetricInfo("curriculum/max_len", "max", "longest length the curriculum has reached"),
    MetricInfo("val/mse_per_dim", "min", "in-context regression error per dimension, every point"),
    MetricInfo(
        "val/mse_last_point", "min", "in-context regression error per dimension, last point"
    ),
)

METRICS: dict[str, MetricInfo] = {m.name: m for m in _BUILTIN}


def metric_info(name: str) -> MetricInfo | None:
    """The declaration of a built-in metric, or ``None`` for one abl does not know."""
    return METRICS.get(name)


def metric_mode(name: str) -> Mode | None:
    """``min`` or ``max`` for a built-in score; ``None`` for measurements and unknown names."""
    info = METRICS.get(name)
    return info.mode if info else None
