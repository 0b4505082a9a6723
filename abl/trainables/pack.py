"""Trial packs: many small trials of one architecture trained as one job, in lockstep.

K members are K copies of one model stacked along a leading member axis and run through
``torch.func.vmap`` over ``functional_call``; each member keeps what a solo trial of
:func:`abl.trainables.loop.train` has: its init (its model is built by ``build_run`` under its
own seed), its task and batch generator, its learning rate, weight decay, schedule and gradient
clip, its task's curriculum hooks and its metrics. Members may differ only in
:data:`PER_MEMBER_KEYS`; a member that diverges, or that the caller stops, drops out of the stack.

Each member's parameters are one row of a flat ``(K, P)`` leaf, so clipping is one norm over a
row and the optimizer is a handful of whole-tensor ops per step. The optimizer is hand-written
(:class:`StackedAdamW`, torch's single-tensor AdamW formulas with the learning rate and decay
as ``(K, 1)`` tensors): torch's AdamW takes one learning rate per parameter group, and K groups
of per-member views cost K small steps in Python. Measured by ``python -m bench.pack_loop`` on
2 CPU cores: at K = 64 one step takes 0.19 ms against 6.2 ms (forecast att) and 5.2 ms
against 16.6 ms (bigram_att), and it is faster at every K measured. Losses are summed on the
device; the host waits for the device once per epoch. A flat row gives every parameter a
gradient (zeros where a solo trial's would be None, which AdamW would skip): every built-in
model uses all its parameters in every step, which the equality tests check by kind.

On the CPU, attention runs through SDPA's math backend inside vmap (the fused CPU kernel has no
batching rule and would loop over members); on a GPU the default backends are batched.

Example::

    from abl.trainables import TRAINABLES
    from abl.trainables.pack import train_pack
    spec = TRAINABLES.get("forecast")
    configs = [spec.resolve({"seed": s, "train.epochs": 2}, "example") for s in range(4)]
    train_pack(configs, trainable=spec, report=lambda metrics, ckpt: print(metrics))
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, vmap

from abl.errors import AblError
from abl.trainables.loop import (
    Run,
    Spec,
    _load_rng_state,
    _lr_factor,
    _rng_state,
    _steps_per_epoch,
    autocast,
    build_run,
    checkpoint_due,
    compiled,
    epoch_metrics,
    finite,
    sample_flops,
    to_device,
    val_means,
    with_checkpoint,
)

PER_MEMBER_KEYS: frozenset[str] = frozenset(
    {
        "seed",
        "train.lr",
        "train.weight_decay",
        "train.warmup_steps",
        "train.schedule",
        "train.grad_clip",
    }
)
# (metrics of each member or None, checkpoint dir or None) -> member indices to stop
PackReport = Callable[[list[dict[str, Any] | None], str | None], Collection[int] | None]

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.AdamW's defaults, which the loop uses
_CLIP_EPS = 1e-6  # clip_grad_norm_'s
# model.kind -> why it cannot be packed; the built-ins not named here pack
_UNPACKABLE = {"lstm": "nn.LSTM has no vmap batching rule (aten::lstm)"}
_RANDOM_KNOBS = ("model.dropout", "model.latent_noise")  # draws of the global RNG in training


def pack_key(full_config: dict[str, Any]) -> str:
    """A stable key of a resolved trial config: equal for two configs iff they may share a pack
    (equal in every key but :data:`PER_MEMBER_KEYS`)."""
    shared = sorted((k, v) for k, v in full_config.items() if k not in PER_MEMBER_KEYS)
    return repr(shared)


def check_packable(configs: Sequence[dict[str, Any]], spec: Spec) -> None:
    """Raise an AblError of one line when resolved ``configs`` cannot train as one pack.

    A pure check of the configs (nothing is built): they must be equal outside
    :data:`PER_MEMBER_KEYS`, of a model kind that runs under vmap, and without settings a
    pack cannot reproduce (global-RNG draws in training, ``train.restart_on_spike``).
    """
    if not configs:
        raise AblError("a trial pack needs at least one config; got none")
    first = configs[0]
    for i, config in enumerate(configs[1:], start=1):
        if pack_key(config) != pack_key(first):
            keys = sorted((set(config) | set(first)) - PER_MEMBER_KEYS)
            key = next(k for k in keys if config.get(k) != first.get(k))
            raise AblError(
                f"the configs of a trial pack may differ only in {', '.join(sorted(PER_MEMBER_KEYS))}; "
                f"config {i} has {key}={config.get(key)!r}, config 0 {first.get(key)!r}"
            )
    kind = first.get("model.kind")
    if kind in _UNPACKABLE:
        raise AblError(f"model.kind {kind} cannot be packed: {_UNPACKABLE[kind]}")
    if kind not in _packable_kinds():
        raise AblError(
            f"model.kind {kind} cannot be packed: only built-in models are known to run under "
            f"vmap ({', '.join(sorted(_packable_kinds()))})"
        )
    if first.get("model.use_lstm_layer"):
        raise AblError(
            f"model.kind {kind} cannot be packed with model.use_lstm_layer=true: {_UNPACKABLE['lstm']}"
        )
    for key in _RANDOM_KNOBS:
        if first.get(key, 0) > 0:
            raise AblError(
                f"{key} must be 0 in a trial pack (its draws from the global RNG cannot match a "
                f"solo trial's); got {first[key]}"
            )
    if first.get("train.restart_on_spike", 0) > 0:
        raise AblError(
            f"train.restart_on_spike must be 0 in a trial pack (members would restart apart); "
            f"got {first['train.restart_on_spike']}"
        )


def _packable_kinds() -> set[str]:
    from abl.trainables.models import MODELS

    builtin = set(MODELS.names()) - set(MODELS.plugin_names())
    return builtin - set(_UNPACKABLE)


@dataclass
class StackedAdamW:
    """torch's AdamW (single-tensor formulas, betas 0.9/0.999, eps 1e-8, decoupled decay) over
    ``(K, P)`` rows, with one learning rate and weight decay per row.

    ``lrs[s]`` holds every member's learning rate at optimizer step ``s`` (the schedule), as
    Python floats, so each step's factors are computed in double as torch computes them.
    """

    lrs: list[list[float]]  # (steps, K): base lr x schedule factor
    weight_decay: list[float]  # (K,)
    exp_avg: Tensor
    exp_avg_sq: Tensor
    steps: int = 0  # optimizer steps taken (the bias corrections')
    # (steps, K, 1) float32 on the device, per step: 1 - lr * wd and -lr / bias_correction1
    decay: Tensor = field(init=False, repr=False)
    neg_size: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # computed in double as torch's AdamW computes them, moved to the device once
        wds, beta1 = self.weight_decay, BETAS[0]
        decay = [[1 - lr * wd for lr, wd in zip(row, wds, strict=True)] for row in self.lrs]
        size = [[-lr / (1 - beta1 ** (s + 1)) for lr in row] for s, row in enumerate(self.lrs)]
        shape = (len(self.lrs), len(wds), 1)
        dev = self.exp_avg.device
        self.decay = torch.tensor(decay, dtype=torch.float32).reshape(shape).to(dev)
        self.neg_size = torch.tensor(size, dtype=torch.float32).reshape(shape).to(dev)

    @torch.no_grad()
    def step(self, param: Tensor, grad: Tensor) -> None:
        """One AdamW step of every row of ``param`` (steps are counted from 0 in lockstep)."""
        decay, neg_size = self.decay[self.steps], self.neg_size[self.steps]
        self.steps += 1
        beta1, beta2 = BETAS
        param.mul_(decay)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (self.exp_avg_sq.sqrt() / (1 - beta2**self.steps) ** 0.5).add_(EPS)
        param.addcdiv_(self.exp_avg * neg_size, denom)  # == addcdiv_(m, d, value=-lr/bc1)

    def keep(self, rows: Tensor) -> None:
        """Drop every row but ``rows`` (indices into the stack)."""
        self.exp_avg, self.exp_avg_sq = self.exp_avg[rows], self.exp_avg_sq[rows]
        self.decay, self.neg_size = self.decay[:, rows], self.neg_size[:, rows]


@dataclass
class Pack:
    """The members (their :class:`~abl.trainables.loop.Run`: task, generator, config), one
    template module, and the stacked weights and optimizer of the members still training."""

    runs: list[Run]
    template: torch.nn.Module
    layout: list[tuple[str, int, int, torch.Size]]  # parameter name, offset, numel, shape
    flat: Tensor  # (active, P) leaf: row j is member active[j]'s parameters
    buffers: dict[str, Tensor]  # (active, ...) stacked buffers (position tables, ...)
    opt: StackedAdamW
    clip: Tensor  # (active,) train.grad_clip; 0 = none
    active: list[int]  # members still training, in row order
    device: str
    epoch: int = 0  # the next epoch to train
    step: int = 0  # optimizer steps taken
    flops_per_sample: float | None = None  # forward + backward of one member, first step
    # every member's training loss, (active, ...) stacks in: vmapped, compiled if asked
    losses: Callable[..., Tensor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.losses = compiled(vmap(self.member_loss), self.cfg)

    @property
    def cfg(self) -> Any:
        """The members' shared ``train.*`` (their per-member knobs live in the optimizer)."""
        return self.runs[0].cfg

    @property
    def n_params(self) -> int:
        """Parameters of one member (``model/params``)."""
        return self.flat.shape[1]

    def forward(self, row: Tensor, buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        """One member's output: its parameter row and buffers in the template, on ``x``."""
        params = {name: row[off : off + n].view(shape) for name, off, n, shape in self.layout}
        return functional_call(self.template, (params, buffers), (x,))

    def member_loss(self, row: Tensor, buffers: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        """One member's training loss on its batch (the loss is a function of the task's config)."""
        with autocast(self.cfg.precision, self.device):
            return self.runs[0].task.loss(self.forward(row, buffers, x), y)

    def member_module(self, slot: int) -> torch.nn.Module:
        """The template holding row ``slot``'s weights, for the tasks' metric hooks."""
        with torch.no_grad():
            named = dict(self.template.named_parameters())
            for name, off, n, shape in self.layout:
                named[name].copy_(self.flat[slot, off : off + n].view(shape))
            for name, buf in self.template.named_buffers():
                buf.copy_(self.buffers[name][slot])
        return self.template

    def keep(self, members: list[int]) -> None:
        """Go on with ``members`` only (a subset of the active ones, in their order)."""
        rows = torch.tensor([self.active.index(m) for m in members], device=self.flat.device)
        self.flat = self.flat.detach()[rows].requires_grad_(True)
        self.buffers = {k: v[rows] for k, v in self.buffers.items()}
        self.clip = self.clip[rows]
        self.opt.keep(rows)
        self.active = members

    def state(self) -> dict[str, Any]:
        """The checkpoint of the epoch just trained: what :meth:`load` continues from exactly."""
        return {
            "flat": self.flat.detach(),
            "buffers": self.buffers,
            "exp_avg": self.opt.exp_avg,
            "exp_avg_sq": self.opt.exp_avg_sq,
            "active": list(self.active),
            "step": self.step,
            "epoch": self.epoch - 1,
            "rng": _rng_state(self.device),
            "members": [
                {"gen": run.gen.get_state(), "task": run.task.state(), "config": dict(run.config)}
                for run in self.runs
            ],
        }

    def load(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (a freshly built pack of the same configs)."""
        self.keep(list(state["active"]))
        with torch.no_grad():
            self.flat.copy_(state["flat"])
            for name, buf in self.buffers.items():
                buf.copy_(state["buffers"][name])
        self.opt.exp_avg.copy_(state["exp_avg"])
        self.opt.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.opt.steps = self.step = int(state["step"])
        self.epoch = int(state["epoch"]) + 1
        _load_rng_state(state["rng"], self.device)
        for run, member in zip(self.runs, state["members"], strict=True):
            run.gen.set_state(member["gen"].cpu())
            run.task.load_state(member["task"])


def build_pack(configs: Sequence[dict[str, Any]], spec: Spec, device: str = "cpu") -> Pack:
    """Build every member as ``build_run`` builds a solo trial (its seed, its init), then stack."""
    runs = [build_run(config, spec, device) for config in configs]
    template = runs[0].model
    layout, off = [], 0
    for name, p in template.named_parameters():
        layout.append((name, off, p.numel(), p.shape))
        off += p.numel()
    with torch.no_grad():
        flat = torch.stack(
            [torch.cat([p.reshape(-1) for p in run.model.parameters()]) for run in runs]
        )
    buffers = {
        name: torch.stack([dict(run.model.named_buffers())[name] for run in runs])
        for name, _ in template.named_buffers()
    }
    total = _steps_per_epoch(runs[0].task, runs[0].cfg) * runs[0].cfg.epochs
    factors = [_lr_factor(run.cfg, total) for run in runs]
    lrs = [
        [run.cfg.lr * f(s) for run, f in zip(runs, factors, strict=True)] for s in range(total + 1)
    ]
    opt = StackedAdamW(
        lrs=lrs,
        weight_decay=[run.cfg.weight_decay for run in runs],
        exp_avg=torch.zeros_like(flat),
        exp_avg_sq=torch.zeros_like(flat),
    )
    clip = torch.tensor([run.cfg.grad_clip for run in runs], device=flat.device)
    for run in runs[1:]:
        run.model = template  # one module serves all; the members' own copies are freed
    return Pack(
        runs, template, layout, flat.requires_grad_(True), buffers, opt, clip,
        list(range(len(runs))), device,
    )  # fmt: skip


@contextlib.contextmanager
def _batched_kernels(device: str) -> Iterator[None]:
    """Kernels that vmap batches: SDPA's math backend on the CPU, no MHA fast path."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]) if device == "cpu" else contextlib.nullcontext():
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)


def _train_epoch(pack: Pack) -> tuple[list[float], int]:
    """One epoch of every active member; their mean train losses (one host sync) and samples each."""
    runs = [pack.runs[m] for m in pack.active]
    cfg, loss_fn = pack.cfg, runs[0].task.loss  # the loss is a function of the task's config
    iters = [run.task.batches("train", cfg.batch_size, generator=run.gen) for run in runs]
    total = torch.zeros(len(runs), dtype=torch.float64, device=pack.device)
    count, samples = 0, 0
    pack.template.train()
    for step in itertools.count():
        batches = [next(it, None) for it in iters]  # fetched before the cap, as loop.train does
        if batches[0] is None or (cfg.steps_per_epoch > 0 and step >= cfg.steps_per_epoch):
            break
        for run in runs:
            run.task.set_step(pack.step)
        pack.template.set_step(pack.step)
        x = to_device(torch.stack([b[0] for b in batches]), pack.device)
        y = to_device(torch.stack([b[1] for b in batches]), pack.device)
        if pack.flops_per_sample is None:  # one member's model, as a solo trial counts it
            pack.flops_per_sample = sample_flops(pack.template, loss_fn, x[0], y[0])
        losses = pack.losses(pack.flat, pack.buffers, x, y)
        losses.sum().backward()  # members are independent: each row gets its own gradient
        grad = pack.flat.grad
        pack.flat.grad = None
        _clip(grad, pack.clip)
        pack.opt.step(pack.flat, grad)
        pack.step += 1
        total += losses.detach().double()
        count += 1
        samples += x.shape[1]
    return (total / max(count, 1)).tolist(), samples


def _clip(grad: Tensor, clip: Tensor) -> None:
    """``clip_grad_norm_`` per row: rows with a clip > 0 scaled to at most that norm."""
    norm = torch.linalg.vector_norm(grad, dim=1)
    coef = torch.clamp(clip / (norm + _CLIP_EPS), max=1.0)
    grad.mul_(torch.where(clip > 0, coef, torch.ones_like(coef)).unsqueeze(1))


@torch.no_grad()
def _evaluate(pack: Pack) -> list[dict[str, float]]:
    """Each active member's ``val/loss`` (and ``val/loss_last``) on the shared validation batches.

    A task draws its validation set from ``data.*`` alone (the Task contract), so every member
    is scored on member 0's batches, given once to all.
    """
    task = pack.runs[pack.active[0]].task
    pack.template.eval()

    def member(row: Tensor, buffers: dict[str, Tensor], x: Tensor, y: Tensor) -> Any:
        with autocast(pack.cfg.precision, pack.device):
            out = pack.forward(row, buffers, x)
            last = (
                task.loss(out[:, -1:], y[:, -1:]) if task.next_step_targets else out.new_zeros(())
            )
            return task.loss(out, y), last

    def losses(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        loss, last = vmap(member, in_dims=(0, 0, None, None))(pack.flat, pack.buffers, x, y)
        return loss, last if task.next_step_targets else None

    means = val_means(losses, task, pack.cfg.batch_size, pack.device)
    names = list(means)
    values = torch.stack([means[k] for k in names], dim=1).tolist()  # one host sync
    return [dict(zip(names, row, strict=True)) for row in values]


def train_pack(
    configs: Sequence[dict[str, Any]],
    *,
    trainable: Spec,
    report: PackReport,
    restore: dict[str, Any] | None = None,
    device: str = "cpu",
) -> None:
    """Train ``len(configs)`` resolved trial configs of ``trainable`` as one pack, in lockstep.

    After every epoch ``report(metrics, ckpt_dir)``: ``metrics[i]`` is what
    :func:`abl.trainables.loop.train` reports for config ``i`` alone at that epoch (to float
    tolerance), None once member ``i`` has stopped; ``ckpt_dir`` holds ``CHECKPOINT_FILE``
    with the whole pack when a checkpoint is due, else None. The indices ``report`` returns
    stop now; a diverged member reports ``trial/status`` = ``diverged`` once and stops.
    ``restore`` (a pack checkpoint) continues exactly where it was saved.
    """
    check_packable(configs, trainable)
    pack = build_pack(configs, trainable, device)
    if restore is not None:
        pack.load(restore)
    saved_at = time.monotonic()
    while pack.epoch < pack.cfg.epochs and pack.active:
        t0 = time.perf_counter()
        with _batched_kernels(device):
            train_losses, samples = _train_epoch(pack)
            speed = samples / (time.perf_counter() - t0)
            vals = _evaluate(pack)
        metrics = _close_epoch(pack, train_losses, vals, speed)
        stop: Collection[int] | None = None
        if pack.active and checkpoint_due(pack.cfg, pack.epoch, saved_at):

            def emit(tmp: str, metrics: list[dict[str, Any] | None] = metrics) -> None:
                nonlocal stop
                stop = report(metrics, tmp)

            with_checkpoint(pack.state(), emit)
            saved_at = time.monotonic()
        else:
            stop = report(metrics, None)
        if stop:
            pack.keep([m for m in pack.active if m not in set(stop)])


def _close_epoch(
    pack: Pack, train_losses: list[float], vals: list[dict[str, float]], speed: float
) -> list[dict[str, Any] | None]:
    """Every member's metrics of the epoch just trained, as loop.train makes them; the
    diverged members leave the pack."""
    metrics: list[dict[str, Any] | None] = [None] * len(pack.runs)
    going = []
    last = pack.epoch + 1 == pack.cfg.epochs
    for slot, m in enumerate(pack.active):
        run = pack.runs[m]
        lr = pack.opt.lrs[min(pack.step, len(pack.opt.lrs) - 1)][m]  # what LambdaLR reports
        # the FLOP/s the pack's job achieves, every active member's samples together
        flops = (pack.flops_per_sample or 0.0) * speed * len(pack.active)
        out = epoch_metrics(
            pack.epoch, train_losses[slot], vals[slot], lr, speed, pack.n_params, flops,
            pack.device, pack.cfg.precision,
        )  # fmt: skip
        metrics[m] = out
        if not finite(out):
            out["trial/status"] = "diverged"
            continue
        going.append(m)
        model = pack.member_module(slot)
        out.update(run.task.epoch_metrics(model))
        run.task.observe(out)
        if last:
            out.update(run.task.final_metrics(model))
            out["trial/status"] = "completed"
    pack.epoch += 1
    if going != pack.active:
        pack.keep(going)
    return metrics
