"""``python -m bench.pack_loop``: trials per hour of K trials packed into one job vs K solo runs.

Plain Python, no Ray: :func:`abl.trainables.pack.train_pack` of K members (seeds and learning
rates apart) against :func:`abl.trainables.loop.train` of the same trials one after another,
on two tiny settings of the built-in spaces: ``forecast`` with ``att`` (att_timeseries at
d_model 16, 32 time steps) and ``charlm`` with ``bigram_att`` (bigram_pe: lr 1e-2 constant,
no clipping, batches of 32, n_embd 64, block 32), one short epoch each. Solo runs do not depend
on K: they are timed once per setting on SOLO_TRIALS trials. A second table times one
optimizer step of K members: the hand-written StackedAdamW against torch's AdamW with one
parameter group per member (views of the stacked rows). Prints markdown tables.
"""

from __future__ import annotations

import time
from typing import Any

import torch

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


def solo_seconds(name: str, configs: list[dict[str, Any]]) -> float:
    """Seconds per trial of ``configs`` trained one after another by loop.train."""
    spec = TRAINABLES.get(name)
    t0 = time.perf_counter()
    for config in configs:
        train(config, trainable=spec, report=lambda _m, _c: None)
    return (time.perf_counter() - t0) / len(configs)


def pack_seconds(name: str, configs: list[dict[str, Any]]) -> float:
    """Seconds to train ``configs`` as one pack."""
    t0 = time.perf_counter()
    train_pack(configs, trainable=TRAINABLES.get(name), report=lambda _m, _c: None)
    return time.perf_counter() - t0


def optimizer_seconds(
    name: str, base: dict[str, Any], k: int, steps: int = 20
) -> tuple[float, float]:
    """Seconds per step of StackedAdamW and of K-group torch AdamW on one pack's rows."""
    pack = build_pack(members(name, base, k), TRAINABLES.get(name))
    flat = pack.flat.detach()
    grad = torch.randn_like(flat) * 1e-3
    stacked = StackedAdamW(
        lrs=[[1e-3] * k] * (3 * steps + 1),  # best_of runs 3 x steps
        weight_decay=[0.0] * k,
        exp_avg=torch.zeros_like(flat),
        exp_avg_sq=torch.zeros_like(flat),
    )
    vectorized = best_of(lambda: stacked.step(flat, grad), steps)
    rows = [flat[i] for i in range(k)]
    for row, g in zip(rows, grad, strict=True):
        row.grad = g
    groups = [{"params": [row], "lr": 1e-3 * (1 + i % 3)} for i, row in enumerate(rows)]
    opt = torch.optim.AdamW(groups, lr=1e-3)
    return vectorized, best_of(opt.step, steps)


def best_of(step: Any, steps: int, repeats: int = 3) -> float:
    """The fastest of ``repeats`` timings of ``steps`` calls of ``step``, per call: a shared
    machine's noise only ever adds time."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - t0) / steps)
    return min(times)


def main() -> None:
    """Print the trials/hour table, then the optimizer table."""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| setting | K | solo trials/hour | packed trials/hour | ratio |")
    print("|---|---:|---:|---:|---:|")
    for label, (name, base) in SETTINGS.items():
        pack_seconds(name, members(name, base, 2))  # warm-up: imports, corpus, kernels
        solo = solo_seconds(name, members(name, base, SOLO_TRIALS))
        for k in KS:
            packed = pack_seconds(name, members(name, base, k))
            solo_rate, pack_rate = 3600 / solo, 3600 * k / packed
            print(
                f"| {label} | {k} | {solo_rate:.0f} | {pack_rate:.0f} | {pack_rate / solo_rate:.1f} |"
            )
    print("\n| setting | K | StackedAdamW ms/step | K-group AdamW ms/step | ratio |")
    print("|---|---:|---:|---:|---:|")
    for label, (name, base) in SETTINGS.items():
        for k in KS:
            vec, grouped = optimizer_seconds(name, base, k)
            print(
                f"| {label} | {k} | {vec * 1e3:.3f} | {grouped * 1e3:.3f} | {grouped / vec:.1f} |"
            )


if __name__ == "__main__":
    main()
