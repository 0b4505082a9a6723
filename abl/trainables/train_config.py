"""``train.*``: the optimisation knobs every built-in trainable shares.

Its own module, below both the training loop and the trainable specs (which list its fields
in every trial schema), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from abl.trainables.config import param, require


@dataclass
class TrainConfig:
    """Optimisation knobs shared by every trainable (``train.*``)."""

    epochs: int = param(
        5,
        "epochs to train: an epoch is one pass over a fixed training set, or, for tasks that "
        "draw training data at random, data.epoch_batches fresh batches (data.train_samples "
        "fresh samples for copy and addition)",
    )
    batch_size: int = param(64, "samples per optimizer step")
    lr: float = param(1e-3, "peak AdamW learning rate")
    weight_decay: float = param(0.0, "AdamW weight decay")
    warmup_steps: int = param(0, "linear warmup steps before the schedule")
    schedule: Literal["constant", "cosine"] = param("cosine", "learning-rate decay after warmup")
    grad_clip: float = param(1.0, "max global gradient norm; 0 disables clipping")
    steps_per_epoch: int = param(0, "cap on optimizer steps per epoch; 0 = the whole epoch")
    checkpoint: bool = param(
        True, "save checkpoints (retries and resume continue from the last one)"
    )
    checkpoint_every_s: float = param(
        30.0,
        "seconds of training between checkpoints, and one after the last epoch; a retried "
        "or resumed trial redoes at most this much; 0 = after every epoch",
    )
    restart_on_spike: float = param(
        0.0,
        "reload the best epoch's weights and optimizer moments when val/loss exceeds this "
        "factor x its best; 0 disables",
    )


def check_train(cfg: TrainConfig) -> None:
    """The ranges of ``train.*``: a trial refuses anything else before it trains."""
    require(
        [
            (cfg.epochs >= 1, "epochs must be >= 1", cfg.epochs, "train.epochs"),
            (cfg.batch_size >= 1, "batch_size must be >= 1", cfg.batch_size, "train.batch_size"),
            (cfg.lr > 0, "lr must be > 0", cfg.lr, "train.lr"),
            (
                cfg.weight_decay >= 0,
                "weight_decay must be >= 0",
                cfg.weight_decay,
                "train.weight_decay",
            ),
            (
                cfg.warmup_steps >= 0,
                "warmup_steps must be >= 0",
                cfg.warmup_steps,
                "train.warmup_steps",
            ),
            (
                cfg.grad_clip >= 0,
                "grad_clip must be >= 0 (0 disables it)",
                cfg.grad_clip,
                "train.grad_clip",
            ),
            (
                cfg.steps_per_epoch >= 0,
                "steps_per_epoch must be >= 0 (0: the whole epoch)",
                cfg.steps_per_epoch,
                "train.steps_per_epoch",
            ),
            (
                cfg.checkpoint_every_s >= 0,
                "checkpoint_every_s must be >= 0 (0: after every epoch)",
                cfg.checkpoint_every_s,
                "train.checkpoint_every_s",
            ),
            (
                cfg.restart_on_spike == 0 or cfg.restart_on_spike > 1,
                "restart_on_spike must be 0 (off) or a factor > 1",
                cfg.restart_on_spike,
                "train.restart_on_spike",
            ),
        ]
    )
