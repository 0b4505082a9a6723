"""``python -m bench.pack_loop``: trials per hour of K trials packed into one job vs K solo runs.

Plain Python, no Ray: :func:`abl.trainables.pack.train_pack` of K members (seeds and learning
rates apart) against :func:`abl.trainables.loop.train` of the same trials one after another,
on two tiny settings of the built-in spaces: ``forecast`` with ``att`` (att_timeseries at
d_model 16, 32 time steps) and ``charlm`` with ``bigram_att`` (bigram_pe: lr 1e-2 constant,
no clipping, batches of 32, n_embd 64, block 32), one short epoch each. Solo runs do not depend
on K: they are timed once per setting on SOLO_TRIALS trials. A second table times one
optimizer step of K members: the hand-written StackedAdamW against torch's AdamW with one
parameter group per member (views of the stacked rows). A third times one forward and
backward of K ``bigram_att`` members: the pack's ``vmap`` over ``functional_call`` against
the same model written by hand with grouped batched matmuls. Prints markdown tables.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from abl.trainables.loop import train
from abl.trainables.pack import StackedAdamW, build_pack, train_pack
from abl.trainables.spec import TRAINABLES

KS = (1, 4, 16, 64)
SOLO_TRIALS = 4
SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "forecast att": (
        "forecast",
        {
            "model.kind": "att",
            "model.d_model": 16,
            "data.time_steps": 32,
            "data.length": 2000,
            "train.batch_size": 64,
            "train.epochs": 1,
            "train.steps_per_epoch": 20,
            "train.checkpoint": False,
        },
    ),
    "charlm bigram_att": (
        "charlm",
        {
            "model.kind": "bigram_att",
            "model.n_embd": 64,
            "data.block_size": 32,
            "data.epoch_batches": 20,
            "data.val_batches": 4,
            "train.batch_size": 32,
            "train.lr": 1e-2,
            "train.schedule": "constant",
            "train.grad_clip": 0.0,
            "train.epochs": 1,
            "train.checkpoint": False,
        },
    ),
}


def members(name: str, base: dict[str, Any], k: int) -> list[dict[str, Any]]:
    """``k`` resolved configs of ``base`` with their own seed and learning rate."""
    spec = TRAINABLES.get(name)
    lr = base.get("train.lr", 1e-3)
    return [
        spec.resolve({**base, "seed": i, "train.lr": lr * (1 + i % 3)}, "bench") for i in range(k)
    ]


def solo_seconds(name: str, configs: list[dict[str, Any]], device: str = "cpu") -> float:
    """Seconds per trial of ``configs`` trained one after another by loop.train."""
    spec = TRAINABLES.get(name)
    t0 = time.perf_counter()
    for config in configs:
        train(config, trainable=spec, report=lambda _m, _c: None, device=device)
    return (time.perf_counter() - t0) / len(configs)


def pack_seconds(name: str, configs: list[dict[str, Any]], device: str = "cpu") -> float:
    """Seconds to train ``configs`` as one pack (a trial's reports wait for the device)."""
    t0 = time.perf_counter()
    train_pack(configs, trainable=TRAINABLES.get(name), report=lambda _m, _c: None, device=device)
    return time.perf_counter() - t0


def optimizer_seconds(
    name: str, base: dict[str, Any], k: int, steps: int = 20, device: str = "cpu"
) -> tuple[float, float]:
    """Seconds per step of StackedAdamW and of K-group torch AdamW on one pack's rows."""
    pack = build_pack(members(name, base, k), TRAINABLES.get(name), device)
    flat = pack.flat.detach()
    grad = torch.randn_like(flat) * 1e-3
    stacked = StackedAdamW(
        lrs=[[1e-3] * k] * (3 * steps + 1),  # best_of runs 3 x steps
        weight_decay=[0.0] * k,
        exp_avg=torch.zeros_like(flat),
        exp_avg_sq=torch.zeros_like(flat),
    )
    vectorized = best_of(lambda: stacked.step(flat, grad), steps, device=device)
    rows = [flat[i] for i in range(k)]
    for row, g in zip(rows, grad, strict=True):
        row.grad = g
    groups = [{"params": [row], "lr": 1e-3 * (1 + i % 3)} for i, row in enumerate(rows)]
    opt = torch.optim.AdamW(groups, lr=1e-3)
    return vectorized, best_of(opt.step, steps, device=device)


def grouped_bigram_att(pack: Any, flat: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Every member's loss of ``bigram_att`` (an additive position table: pe_type randn or
    sinpe) written by hand with grouped batched
    matmuls over the stacked ``(K, ...)`` weights: the peer of the pack's vmapped
    ``functional_call`` (the issue asks which is faster). Only this kind: a hand-grouped
    version of each model is the cost vmap saves."""
    assert pack.buffers.get("pe") is not None, "grouped_bigram_att adds a position table"
    k, b, t = x.shape
    w = {name: flat[:, off : off + n].view(k, *shape) for name, off, n, shape in pack.layout}
    d = w["tok.weight"].shape[-1]
    members = torch.arange(k, device=x.device).view(k, 1, 1)
    h = w["tok.weight"][members, x] + pack.buffers["pe"][:, None, :t]  # (K, B, T, d)
    qkv = torch.baddbmm(w["qkv.bias"][:, None], h.view(k, b * t, d), w["qkv.weight"].mT)
    q, kk, v = (z.reshape(k * b, 1, t, d) for z in qkv.split(d, dim=-1))
    att = F.scaled_dot_product_attention(q, kk, v, is_causal=True).view(k, b * t, d)
    logits = torch.baddbmm(w["head.bias"][:, None], att, w["head.weight"].mT)
    losses = F.cross_entropy(logits.view(k * b * t, -1), y.reshape(-1), reduction="none")
    return losses.view(k, b * t).mean(dim=1)


def step_seconds(
    k: int, steps: int = 20, device: str = "cpu", extra: dict[str, Any] | None = None
) -> tuple[float, float, float]:
    """Seconds per forward + backward of K ``bigram_att`` members: the pack's vmapped step and
    the hand-grouped one, on the same stacked weights and batches; and their largest loss
    difference (the two must compute the same)."""
    from torch.func import vmap
    from torch.nn.attention import SDPBackend, sdpa_kernel

    name, base = SETTINGS["charlm bigram_att"]
    pack = build_pack(members(name, {**base, **(extra or {})}, k), TRAINABLES.get(name), device)
    batches = [next(run.task.batches("train", 32, generator=run.gen)) for run in pack.runs]
    x = torch.stack([bx for bx, _ in batches]).to(device)
    y = torch.stack([by for _, by in batches]).to(device)
    flat, buffers = pack.flat, pack.buffers
    # the pack's kernels: SDPA's math backend on a CPU (its module docstring), else the default
    on_cpu = device == "cpu"
    with sdpa_kernel([SDPBackend.MATH]) if on_cpu else contextlib.nullcontext():

        def vmapped() -> Tensor:
            losses = vmap(pack.member_loss)(flat, buffers, x, y)
            losses.sum().backward()
            flat.grad = None
            return losses

        def grouped() -> Tensor:
            losses = grouped_bigram_att(pack, flat, x, y)
            losses.sum().backward()
            flat.grad = None
            return losses

        gap = (vmapped() - grouped()).abs().max().item()
        return best_of(vmapped, steps, device=device), best_of(grouped, steps, device=device), gap


def best_of(step: Any, steps: int, repeats: int = 3, device: str = "cpu") -> float:
    """The fastest of ``repeats`` timings of ``steps`` calls of ``step``, per call: a shared
    machine's noise only ever adds time (on a GPU, timed to the end of its queue)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        times.append((time.perf_counter() - t0) / steps)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    """Print the trials/hour table, then the optimizer and the vmap-vs-grouped tables.

    ``--device cuda`` runs it all on the GPU; ``--set train.precision=bf16`` (or
    ``train.compile=true``, repeatable) adds a trial setting to every trial and step timed.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.pack_loop")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (cuda:0, ...)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    device = args.device
    extra = dict(_setting(item) for item in args.set)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device} {extra}\n")
    print("| setting | K | solo trials/hour | packed trials/hour | ratio |")
    print("|---|---:|---:|---:|---:|")
    for label, (name, base) in SETTINGS.items():
        base = {**base, **extra}
        pack_seconds(name, members(name, base, 2), device)  # warm-up: imports, corpus, kernels
        solo = solo_seconds(name, members(name, base, SOLO_TRIALS), device)
        for k in KS:
            packed = pack_seconds(name, members(name, base, k), device)
            solo_rate, pack_rate = 3600 / solo, 3600 * k / packed
            print(
                f"| {label} | {k} | {solo_rate:.0f} | {pack_rate:.0f} | {pack_rate / solo_rate:.1f} |"
            )
    print("\n| setting | K | StackedAdamW ms/step | K-group AdamW ms/step | ratio |")
    print("|---|---:|---:|---:|---:|")
    for label, (name, base) in SETTINGS.items():
        for k in KS:
            vec, grouped = optimizer_seconds(name, base, k, device=device)
            print(
                f"| {label} | {k} | {vec * 1e3:.3f} | {grouped * 1e3:.3f} | {grouped / vec:.1f} |"
            )
    print(
        "\n| bigram_att, K | vmap ms/step | grouped bmm ms/step | vmap / grouped | max loss gap |"
    )
    print("|---:|---:|---:|---:|---:|")
    for k in KS:
        vmapped, grouped, gap = step_seconds(k, device=device, extra=extra)
        print(
            f"| {k} | {vmapped * 1e3:.3f} | {grouped * 1e3:.3f} | {vmapped / grouped:.2f} "
            f"| {gap:.1e} |"
        )


def _setting(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--set``, the value read as YAML reads it (true, 1e-3, bf16)."""
    import yaml

    key, sep, value = item.partition("=")
    if not sep:
        raise SystemExit(f"--set takes KEY=VALUE; got {item!r}")
    return key, yaml.safe_load(value)


if __name__ == "__main__":
    main()
