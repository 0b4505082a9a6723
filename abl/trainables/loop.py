"""The one training loop every built-in trainable runs, as a Ray Tune function trainable.

Run one trial outside Ray (prints each report)::

    python -c "from abl.trainables import TRAINABLES, train; train({'train.epochs': 2}, trainable=TRAINABLES.get('forecast'))"
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from abl.errors import AblError
from abl.trainables.config import build, nested
from abl.trainables.models import MODELS
from abl.trainables.tasks import TASKS
from abl.trainables.train_config import TrainConfig


class Spec(Protocol):
    """What the loop needs of a trainable (:class:`abl.trainables.spec.TrainableSpec` has it):
    its task, and the full trial config for a given one."""

    task: str

    def resolve(self, given: dict[str, Any], where: str) -> dict[str, Any]: ...


Report = Callable[[dict[str, Any], str | None], None]  # (metrics, checkpoint dir or None)
CHECKPOINT_FILE = "state.pt"


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


@dataclass
class Best:
    """The best epoch so far (``train.restart_on_spike``): its val/loss, weights and optimizer state."""

    loss: float
    model: dict[str, Any]
    opt: dict[str, Any]


def _rng_state(device: str) -> dict[str, Any]:
    """The global generators that dropout and noise draw from (torch, numpy, random, the GPU's)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _load_rng_state(state: dict[str, Any], device: str) -> None:
    torch.set_rng_state(state["torch"].cpu())  # torch.load(map_location=cuda) moves it
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and device.startswith("cuda"):
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


@dataclass
class Run:
    """Everything one trial trains: built from its config, restorable from a checkpoint.

    :meth:`state` holds everything the next epoch depends on (weights, optimizer, schedule,
    the batch generator, the global generators, the task's curriculum and the best epoch of
    ``restart_on_spike``), so a restored trial reports what an uninterrupted one reports, and
    the trial's resolved flat config, so a checkpoint says what it is a checkpoint of.
    """

    cfg: TrainConfig
    task: Any
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    gen: torch.Generator
    epoch: int = 0  # the next epoch to train
    best: Best | None = None  # kept only with train.restart_on_spike
    device: str = "cpu"  # where the model trains; its generator is checkpointed too
    config: dict[str, Any] = field(default_factory=dict)  # the resolved flat trial config
    flops_per_sample: float | None = None  # forward + backward, counted at the first step
    forward: torch.nn.Module = field(init=False, repr=False)  # model, compiled if asked

    def __post_init__(self) -> None:
        self.forward = compiled(self.model, self.cfg)

    def state(self) -> dict[str, Any]:
        """The checkpoint of the epoch just trained (saved as ``state.pt``)."""
        best = None if self.best is None else vars(self.best)
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "gen": self.gen.get_state(),
            "rng": _rng_state(self.device),
            "task": self.task.state(),
            "best": best,
            "epoch": self.epoch - 1,
            "config": dict(self.config),  # what trained it, as MLflow and Parquet record it
        }

    def load(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`; the global generators too, when it saved them."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.gen.set_state(state["gen"].cpu())
        if "rng" in state:
            _load_rng_state(state["rng"], self.device)
        self.task.load_state(state.get("task", {}))
        best = state.get("best")
        self.best = None if best is None else Best(**best)
        self.epoch = state["epoch"] + 1


def preflight(configs: list[dict[str, Any]], spec: Spec) -> None:
    """Every check a trial would make before training, for every config, without training.

    Every value against its field's type and range (:meth:`abl.trainables.spec.TrainableSpec.resolve`), the task
    built once per distinct ``data.*`` (files read, lengths checked, rules between knobs) and
    the model once per distinct ``model.*`` on torch's meta device (shapes such as heads
    dividing the width, no memory). Only a user's mistake (AblError) stops the sweep here;
    anything else is left for the trial to report.
    """
    tasks: dict[str, Any] = {}
    models: set[str] = set()
    task_cls = TASKS.get(spec.task)
    for config in configs:
        parts = nested(spec.resolve(config, "trial config"))
        data_key = repr(sorted(parts["data"].items()))
        if data_key not in tasks:
            data = build(task_cls.Config, parts["data"], section="data")
            tasks[data_key] = _or_none(task_cls, data, seed=0)
        task = tasks[data_key]
        model_key = repr((sorted(parts["model"].items()), data_key))
        if task is None or model_key in models:
            continue
        models.add(model_key)
        model_cls = MODELS.get(parts["model"]["kind"])
        args = {k: v for k, v in parts["model"].items() if k != "kind"}
        cfg = build(model_cls.Config, args, section="model")
        with torch.device("meta"), SkipInit():
            _or_none(model_cls, cfg, task.info)


# Tensor methods and torch.nn.init functions that only fill a tensor with values.
_INITS = frozenset(
    {"normal_", "uniform_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_"}
    | {"xavier_uniform_", "xavier_normal_", "orthogonal_", "sparse_", "bernoulli_"}
    | {"exponential_", "random_", "cauchy_", "log_normal_", "geometric_"}
)


class SkipInit(TorchFunctionMode):
    """Parameter initialisation as a no-op, for models built on the meta device only to check
    their shapes: no value is ever read there, and torch's meta kernels of the random inits
    (``normal_``, ``uniform_``) are Python references whose first call imports
    ``torch._dynamo``, 2.5 s of the driver's CPU while the first trials start beside it."""

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) in _INITS:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def _or_none(make: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``make(*args, **kwargs)``; None when that fails for a reason that is not the user's (an
    AblError is raised)."""
    try:
        return make(*args, **kwargs)
    except AblError:
        raise
    except Exception:  # a plug-in that cannot be built on meta, say: the trial will tell
        return None


def build_run(config: dict[str, Any], spec: Spec, device: str = "cpu") -> Run:
    """Seed everything, then build the task, model, optimizer and schedule of a trial."""
    full = spec.resolve(config, "trial config")
    parts = nested(full)
    seed = int(full["seed"])
    seed_everything(seed)
    cfg = build(TrainConfig, parts["train"], section="train")
    task_cls = TASKS.get(spec.task)
    task = task_cls(build(task_cls.Config, parts["data"], section="data"), seed=seed)
    model_cls = MODELS.get(full["model.kind"])
    model_args = {k: v for k, v in parts["model"].items() if k != "kind"}
    model = model_cls(build(model_cls.Config, model_args, section="model"), task.info).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = _steps_per_epoch(task, cfg) * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(cfg, total_steps))
    gen = torch.Generator().manual_seed(seed)
    return Run(cfg, task, model, opt, sched, gen, device=device, config=full)


def train(
    config: dict[str, Any],
    *,
    trainable: Spec,
    report: Report | None = None,
    restore: dict[str, Any] | None = None,
    device: str = "cpu",
) -> None:
    """Train one trial of ``trainable`` with a flat ``config`` (missing keys take defaults).

    Each epoch calls ``report(metrics, checkpoint_dir)``; the last report carries
    ``trial/status`` = ``completed``, or ``diverged`` as soon as the loss stops being finite.
    ``val/loss`` averages every position; tasks with next-step targets also report
    ``val/loss_last`` (the last position only), the one a non-causal model cannot peek at.
    ``restore`` (a ``state.pt`` from an earlier report) continues exactly where it was saved.
    """
    run = build_run(config, trainable, device)
    if restore is not None:
        run.load(restore)
    cfg, task, model = run.cfg, run.task, run.model
    n_params = sum(p.numel() for p in model.parameters())
    emit = report or (lambda metrics, _ckpt: print(metrics))
    saved_at = time.monotonic()  # a restored trial's checkpoint is as good as a new one

    while run.epoch < cfg.epochs:
        t0 = time.perf_counter()
        train_loss, samples = _train_epoch(run, device)
        elapsed = time.perf_counter() - t0
        val = _evaluate(run.forward, task, cfg.batch_size, device, cfg.precision)
        lr = run.sched.get_last_lr()[0]
        speed = samples / elapsed if elapsed > 0 else 0.0
        flops = (run.flops_per_sample or 0.0) * speed
        metrics = epoch_metrics(
            run.epoch, train_loss, val, lr, speed, n_params, flops, device, cfg.precision
        )
        if not finite(metrics):
            metrics["trial/status"] = "diverged"
            emit(metrics, None)
            return
        metrics.update(task.epoch_metrics(model))
        task.observe(metrics)
        run.epoch += 1
        if cfg.restart_on_spike > 0:
            _restart_on_spike(run, val["val/loss"], metrics)
        if run.epoch == cfg.epochs:
            metrics.update(task.final_metrics(model))
            metrics["trial/status"] = "completed"
        if not checkpoint_due(cfg, run.epoch, saved_at):
            emit(metrics, None)
            continue
        with_checkpoint(run.state(), lambda tmp, m=metrics: emit(m, tmp))
        saved_at = time.monotonic()


def _restart_on_spike(run: Run, val_loss: float, metrics: dict[str, Any]) -> None:
    """Keep the best epoch in ``run.best``; go back to it when val/loss spikes past the factor.

    Going back restores the weights and the optimizer's moments and step counts of that
    epoch; the learning-rate schedule and the batch stream carry on.
    """
    best = run.best
    if best is None or val_loss < best.loss:
        run.best = Best(
            val_loss, copy.deepcopy(run.model.state_dict()), copy.deepcopy(run.opt.state_dict())
        )
    elif val_loss > run.cfg.restart_on_spike * best.loss:
        run.model.load_state_dict(best.model)
        # the best epoch's moments, today's learning rates (param_groups belong to the schedule)
        groups = run.opt.state_dict()["param_groups"]
        run.opt.load_state_dict({"state": copy.deepcopy(best.opt["state"]), "param_groups": groups})
        metrics["train/restarts"] = 1


def _steps_per_epoch(task: Any, cfg: TrainConfig) -> int:
    n = task.num_batches("train", cfg.batch_size)
    return min(n, cfg.steps_per_epoch) if cfg.steps_per_epoch > 0 else n


def _train_epoch(run: Run, device: str) -> tuple[float, int]:
    model, task, cfg, opt, sched = run.model, run.task, run.cfg, run.opt, run.sched
    model.train()
    # summed on the device in double, as Python summed each loss.item(): one sync an epoch
    total = torch.zeros((), dtype=torch.float64, device=device)
    count, samples = 0, 0
    for step, (x, y) in enumerate(task.batches("train", cfg.batch_size, generator=run.gen)):
        if cfg.steps_per_epoch > 0 and step >= cfg.steps_per_epoch:
            break
        global_step = int(sched.last_epoch)  # LambdaLR counts optimizer steps
        task.set_step(global_step)
        model.set_step(global_step)
        x, y = to_device(x, device), to_device(y, device)
        if run.flops_per_sample is None:
            run.flops_per_sample = sample_flops(model, task.loss, x, y)
        with autocast(cfg.precision, device):
            loss = task.loss(run.forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        total += loss.detach().double()
        count += 1
        samples += x.shape[0]
    return total.item() / max(count, 1), samples


def to_device(batch: Tensor, device: str) -> Tensor:
    """A CPU batch on ``device``, without the host waiting for it: to a GPU through pinned
    memory, copied asynchronously (a copy from pageable memory waits for the GPU's queue to
    drain, once a step; torch's pinned-memory cache keeps the block until the copy is done)."""
    if device.startswith("cuda"):
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def autocast(precision: str, device: str) -> Any:
    """``train.precision``'s context for the forward pass and loss: bf16 autocast, or none."""
    if precision == "bf16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compiled(fn: Callable[..., Any], cfg: TrainConfig) -> Callable[..., Any]:
    """``fn`` through ``torch.compile`` with ``train.compile_mode`` and ``compile_backend``,
    or ``fn`` itself unless ``train.compile``; a module's state stays the module's own.

    Shapes are static: a trial sees a handful (a full and a last batch, a pack's sizes as
    members stop), and vmap under dynamic shapes fails to trace (torch 2.13)."""
    if not cfg.compile:
        return fn
    mode = None if cfg.compile_mode == "default" else cfg.compile_mode
    return torch.compile(fn, backend=cfg.compile_backend, mode=mode, dynamic=False)


@torch.no_grad()
def _evaluate(
    model: torch.nn.Module, task, batch_size: int, device: str, precision: str = "fp32"
) -> dict[str, float]:
    """``val/loss`` over every position, and ``val/loss_last`` where targets are next steps;
    ``model``: the module, or torch.compile's wrapper of it (which shares its mode)."""
    model.eval()

    def losses(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        with autocast(precision, device):
            out = model(x)
            # nothing after the window's last input is inside the window
            last = task.loss(out[:, -1:], y[:, -1:]) if task.next_step_targets else None
            return task.loss(out, y), last

    return {k: float(v) for k, v in val_means(losses, task, batch_size, device).items()}


def val_means(
    losses: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
    task: Any,
    batch_size: int,
    device: str,
) -> dict[str, torch.Tensor]:
    """``val/loss`` (and ``val/loss_last``) over the task's validation batches, as float64
    tensors on ``device``: summed there, so a GPU is not waited for per batch.

    ``losses(x, y)`` gives the loss of a batch over every position and at the last one (None
    unless the task has next-step targets): one value, or one per member of a trial pack.
    """
    zero = torch.zeros((), dtype=torch.float64, device=device)
    total, total_last, count = zero, zero, 0
    for x, y in task.batches("val", batch_size):
        x, y = to_device(x, device), to_device(y, device)
        loss, last = losses(x, y)
        total = total + loss.double() * x.shape[0]
        if last is not None:
            total_last = total_last + last.double() * x.shape[0]
        count += x.shape[0]
    val = {"val/loss": total / max(count, 1)}
    if task.next_step_targets:
        val["val/loss_last"] = total_last / max(count, 1)
    return val


def epoch_metrics(
    epoch: int,
    train_loss: float,
    val: dict[str, float],
    lr: float,
    samples_per_s: float,
    n_params: int,
    flops_per_s: float = 0.0,
    device: str = "cpu",
    precision: str = "fp32",
) -> dict[str, Any]:
    """What every trial reports after epoch ``epoch`` (0-based) besides its task's metrics;
    ``flops_per_s``: the model FLOP/s its job achieved, and its share of ``device``'s peak
    at ``precision`` where that is known (:func:`peak_flops`)."""
    out = {
        "epoch": epoch + 1,
        "train/loss": train_loss,
        **val,
        "lr": lr,
        "perf/samples_per_s": samples_per_s,
        "perf/flops_per_s": flops_per_s,
        "perf/torch_threads": torch.get_num_threads(),
        "model/params": n_params,
    }
    peak = peak_flops(device, precision)
    if peak:
        out["perf/mfu"] = flops_per_s / peak
    return out


def sample_flops(
    model: torch.nn.Module, loss: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor
) -> float:
    """FLOPs of one sample's forward and backward through ``model``: torch's FlopCounterMode
    over a copy on the meta device (nothing computed, the trial's weights, generators and
    kernels untouched), attention through SDPA's math kernel so that every path counts
    alike; NaN for a model that cannot run on the meta device."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    try:
        meta = copy.deepcopy(model).to("meta")
        with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as mode:
            loss(meta(x.to("meta")), y.to("meta")).backward()
    except Exception:  # a plug-in's op without a meta kernel: FLOPs unknown, training goes on
        return math.nan
    return float(mode.get_total_flops()) / x.shape[0]


# Dense peaks (FLOP/s) of GPUs the logbooks' users train on, by a substring of torch's device
# name, per train.precision: without TF32 (torch's default for matmuls) fp32 is what the loop
# runs at; bf16 is the tensor cores' dense figure (V100 and T4 have no bf16 tensor cores).
_PEAKS = {
    "fp32": {"H200": 67e12, "H100": 67e12, "A100": 19.5e12, "V100": 15.7e12, "T4": 8.1e12},
    "bf16": {"H200": 989e12, "H100": 989e12, "A100": 312e12},
}
PEAK_ENV = "ABL_PEAK_FLOPS"  # the device's peak FLOP/s, where the table does not know it


def peak_flops(device: str, precision: str = "fp32") -> float | None:
    """The peak FLOP/s that ``perf/mfu`` divides by: ``$ABL_PEAK_FLOPS``, else a known GPU's
    peak at ``precision``; None on a CPU or an unknown GPU (no ``perf/mfu`` then)."""
    given = os.environ.get(PEAK_ENV)
    if given:
        return float(given)
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in _PEAKS[precision].items() if key in name), None)


def finite(metrics: dict[str, Any]) -> bool:
    """False when the epoch's train or validation loss is not finite: the trial diverged."""
    losses = (v for k, v in metrics.items() if k == "train/loss" or k.startswith("val/"))
    return all(math.isfinite(v) for v in losses)


def checkpoint_due(cfg: TrainConfig, epochs_done: int, saved_at: float) -> bool:
    """Whether to checkpoint now: after the last epoch, or ``checkpoint_every_s`` after the last one."""
    if not cfg.checkpoint:
        return False
    return epochs_done == cfg.epochs or time.monotonic() - saved_at >= cfg.checkpoint_every_s


def with_checkpoint(state: dict[str, Any], emit: Callable[[str], None]) -> None:
    """Save ``state`` as ``CHECKPOINT_FILE`` in a temporary directory and call ``emit`` with it."""
    with tempfile.TemporaryDirectory(prefix="abl-ckpt-") as tmp:
        torch.save(state, os.path.join(tmp, CHECKPOINT_FILE))
        emit(tmp)


def assigned_device(gpu_ids: list[Any]) -> str:
    """The torch device for the GPUs Ray gave this trial: ``cuda:i`` of the first, else ``cpu``.

    Ray sets ``CUDA_VISIBLE_DEVICES`` to the assigned ids, so torch numbers them from 0;
    without that variable torch sees every card and the id is the index. A GPU that Ray
    assigned but torch cannot see (a node that only declares GPUs, a CPU build of torch)
    means CPU.
    """
    if not gpu_ids or not torch.cuda.is_available():
        return "cpu"
    first = str(gpu_ids[0])
    visible = [
        v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()
    ]
    if visible:
        index = visible.index(first) if first in visible else -1
    else:
        index = int(first) if first.isdigit() else -1
    return f"cuda:{index}" if 0 <= index < torch.cuda.device_count() else "cpu"


def run_trial(config: dict[str, Any], trainable: Spec) -> None:
    """Ray Tune function trainable: threads and device from Ray's assignment, checkpoints to Tune."""
    import ray
    from ray import tune

    resources = ray.get_runtime_context().get_assigned_resources()
    torch.set_num_threads(max(1, int(resources.get("CPU", 1))))
    device = assigned_device(ray.get_gpu_ids())
    on_cuda = float(device.startswith("cuda"))

    def report(metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        ckpt = tune.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None
        tune.report({**metrics, "perf/cuda": on_cuda}, checkpoint=ckpt)

    restore = tune_restore(device)
    train(config, trainable=trainable, report=report, restore=restore, device=device)


def tune_restore(device: str) -> dict[str, Any] | None:
    """The state Tune restores this trial from (its checkpoint's ``state.pt``), or None."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as ckpt_dir:
        path = os.path.join(ckpt_dir, CHECKPOINT_FILE)
        return torch.load(path, map_location=device, weights_only=False)
