"""``train.*``: the optimisation knobs every built-in trainable shares.

Its own module, below both the training loop and the trainable specs (which list its fields
in every trial schema), so neither imports the other; torch-free, like every config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from abl.trainables.config import ComponentConfig


class TrainConfig(ComponentConfig):
    """Optimisation knobs shared by every trainable (``train.*``)."""

    epochs: int = Field(
        5,
        ge=1,
        description="epochs to train: an epoch is one pass over a fixed training set, or, for "
        "tasks that draw training data at random, data.epoch_batches fresh batches "
        "(data.train_samples fresh samples for copy and addition)",
    )
    batch_size: int = Field(64, ge=1, description="samples per optimizer step")
    lr: float = Field(1e-3, gt=0, description="peak AdamW learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    warmup_steps: int = Field(0, ge=0, description="linear warmup steps before the schedule")
    schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="learning-rate decay after warmup"
    )
    grad_clip: float = Field(1.0, ge=0, description="max global gradient norm; 0 disables clipping")
    steps_per_epoch: int = Field(
        0, ge=0, description="cap on optimizer steps per epoch; 0 = the whole epoch"
    )
    checkpoint: bool = Field(
        True, description="save checkpoints (retries and resume continue from the last one)"
    )
    checkpoint_every_s: float = Field(
        30.0,
        ge=0,
        description="seconds of training between checkpoints, and one after the last epoch; a "
        "retried or resumed trial redoes at most this much; 0 = after every epoch",
    )
    restart_on_spike: float = Field(
        0.0,
        description="reload the best epoch's weights and optimizer moments when val/loss exceeds "
        "this factor x its best; 0 disables",
    )

    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="the forward pass and loss in fp32, or under torch.autocast in bf16 "
        "(weights, optimizer state and metrics stay fp32; perf/mfu is then over the bf16 peak)",
    )
    compile: bool = Field(
        False,
        description="train and evaluate through torch.compile (a pack: its vmapped step); the "
        "first steps pay the compilation, and a model whose forward changes with the step "
        "compiles again",
    )
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        "default", description="torch.compile's mode (inductor's); needs train.compile: true"
    )
    compile_backend: Literal["inductor", "aot_eager", "eager", "cudagraphs"] = Field(
        "inductor",
        description="torch.compile's backend; needs train.compile: true (aot_eager: no C++ "
        "compiler needed, a quick check that the model compiles)",
    )

    @field_validator("compile_mode", "compile_backend")
    @classmethod
    def _with_compile(cls, value: str, info: ValidationInfo) -> str:
        default = cls.model_fields[str(info.field_name)].default
        if value != default and not info.data.get("compile"):
            raise ValueError("needs train.compile: true (else it would be ignored)")
        mode = info.data.get("compile_mode", "default")
        if info.field_name == "compile_backend" and value != "inductor" and mode != "default":
            raise ValueError(f"must be inductor with train.compile_mode {mode} (an inductor mode)")
        return value

    @field_validator("restart_on_spike")
    @classmethod
    def _off_or_a_factor(cls, value: float) -> float:
        if value != 0 and not value > 1:
            raise ValueError("must be 0 (off) or a factor > 1")
        return value
