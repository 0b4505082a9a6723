"""The one training loop every built-in trainable runs, as a Ray Tune function trainable.

Run one trial outside Ray (prints each report)::

    python -c "from abl.trainables.loop import train; train({'train.epochs': 2}, trainable='forecast')"
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from abl.trainables.config import build, param
from abl.trainables.models import MODELS
from abl.trainables.spec import TRAINABLES, TrainableSpec
from abl.trainables.tasks import TASKS

Report = Callable[[dict[str, Any], str | None], None]  # (metrics, checkpoint dir or None)
CHECKPOINT_FILE = "state.pt"


@dataclass
class TrainConfig:
    """Optimisation knobs shared by every trainable (``train.*``)."""

    epochs: int = param(5, "passes over the training set")
    batch_size: int = param(64, "samples per optimizer step")
    lr: float = param(1e-3, "peak AdamW learning rate")
    weight_decay: float = param(0.0, "AdamW weight decay")
    warmup_steps: int = param(0, "linear warmup steps before the schedule")
    schedule: Literal["constant", "cosine"] = param("cosine", "learning-rate decay after warmup")
    grad_clip: float = param(1.0, "max global gradient norm; 0 disables clipping")
    steps_per_epoch: int = param(0, "cap on optimizer steps per epoch; 0 = the whole training set")
    checkpoint: bool = param(
        True, "save a checkpoint each epoch (pruning, retries and resume use it)"
    )


def nested(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"model.d_model": 64}`` -> ``{"model": {"d_model": 64}}`` (top-level keys go under "")."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in config.items():
        section, _, name = key.partition(".")
        if name:
            out.setdefault(section, {})[name] = value
        else:
            out.setdefault("", {})[key] = value
    return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _lr_factor(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train(
    config: dict[str, Any],
    *,
    trainable: str | TrainableSpec,
    report: Report | None = None,
    restore: dict[str, Any] | None = None,
    device: str = "cpu",
) -> None:
    """Train one trial of ``trainable`` with a flat ``config`` (missing keys take defaults).

    Each epoch calls ``report(metrics, checkpoint_dir)``; the last report carries
    ``trial/status`` = ``completed``, or ``diverged`` as soon as the loss stops being finite.
    """
    spec = TRAINABLES.get(trainable) if isinstance(trainable, str) else trainable
    full = spec.resolve(config, "trial config")
    parts = nested(full)
    seed = int(full["seed"])
    seed_everything(seed)
    cfg = build(TrainConfig, parts["train"], section="train")
    task = TASKS.get(spec.task)(
        build(TASKS.get(spec.task).Config, parts["data"], section="data"), seed=seed
    )
    model_cls = MODELS.get(full["model.kind"])
    model_args = {k: v for k, v in parts["model"].items() if k != "kind"}
    model = model_cls(build(model_cls.Config, model_args, section="model"), task.info).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = _steps_per_epoch(task, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(cfg, steps_per_epoch * cfg.epochs))
    gen = torch.Generator().manual_seed(seed)
    start_epoch = 0
    if restore is not None:
        model.load_state_dict(restore["model"])
        opt.load_state_dict(restore["opt"])
        sched.load_state_dict(restore["sched"])
        gen.set_state(restore["gen"])
        start_epoch = restore["epoch"] + 1
    n_params = sum(p.numel() for p in model.parameters())
    emit = report or (lambda metrics, _ckpt: print(metrics))

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        train_loss, samples = _train_epoch(model, task, cfg, opt, sched, gen, device)
        elapsed = time.perf_counter() - t0
        val_loss = _evaluate(model, task, cfg.batch_size, device)
        metrics: dict[str, Any] = {
            "epoch": epoch + 1,
            "train/loss": train_loss,
            "val/loss": val_loss,
            "lr": sched.get_last_lr()[0],
            "perf/samples_per_s": samples / elapsed if elapsed > 0 else 0.0,
            "perf/torch_threads": torch.get_num_threads(),
            "model/params": n_params,
        }
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            metrics["trial/status"] = "diverged"
            emit(metrics, None)
            return
        if epoch == cfg.epochs - 1:
            metrics.update(task.final_metrics(model))
            metrics["trial/status"] = "completed"
        if cfg.checkpoint:
            with tempfile.TemporaryDirectory(prefix="abl-ckpt-") as tmp:
                state = {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "gen": gen.get_state(),
                    "epoch": epoch,
                }
                torch.save(state, os.path.join(tmp, CHECKPOINT_FILE))
                emit(metrics, tmp)
        else:
            emit(metrics, None)


def _steps_per_epoch(task: Any, cfg: TrainConfig) -> int:
    n = sum(1 for _ in task.batches("train", cfg.batch_size))
    return min(n, cfg.steps_per_epoch) if cfg.steps_per_epoch > 0 else n


def _train_epoch(model, task, cfg: TrainConfig, opt, sched, gen, device: str) -> tuple[float, int]:
    model.train()
    total, count, samples = 0.0, 0, 0
    for step, (x, y) in enumerate(task.batches("train", cfg.batch_size, generator=gen)):
        if cfg.steps_per_epoch > 0 and step >= cfg.steps_per_epoch:
            break
        x, y = x.to(device), y.to(device)
        loss = task.loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        total += loss.item()
        count += 1
        samples += x.shape[0]
    return total / max(count, 1), samples


@torch.no_grad()
def _evaluate(model, task, batch_size: int, device: str) -> float:
    model.eval()
    total, count = 0.0, 0
    for x, y in task.batches("val", batch_size):
        x, y = x.to(device), y.to(device)
        total += task.loss(model(x), y).item() * x.shape[0]
        count += x.shape[0]
    return total / max(count, 1)


def run_trial(config: dict[str, Any], trainable: str = "forecast") -> None:
    """Ray Tune function trainable: threads and device from Ray's assignment, checkpoints to Tune."""
    import ray
    from ray import tune

    resources = ray.get_runtime_context().get_assigned_resources()
    torch.set_num_threads(max(1, int(resources.get("CPU", 1))))
    device = "cuda" if resources.get("GPU", 0) > 0 and torch.cuda.is_available() else "cpu"

    def report(metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        ckpt = tune.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None
        tune.report(metrics, checkpoint=ckpt)

    restore = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            path = os.path.join(ckpt_dir, CHECKPOINT_FILE)
            restore = torch.load(path, map_location=device, weights_only=False)
    train(config, trainable=trainable, report=report, restore=restore, device=device)
