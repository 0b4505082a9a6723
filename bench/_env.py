"""What every figure shares: one in-process Ray, a stopwatch, torch threads, quiet output."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
NOOP_SPACE = BENCH_DIR / "spaces" / "noop.yaml"  # `trainable: bench.noop:trainable`
CPUS = 2  # every figure runs its trials on this many CPUs of one Ray instance
LOGGERS_OFF = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"  # set by abl (see abl.search.engine)
GPU_ENV = "ABL_BENCH_GPU"  # set by `python -m bench --gpu F`: each trial takes F of a GPU

# What abl's init_ray sets before Tune starts; raw Tune runs see the same environment.
RAY_ENV = {
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}


def gpu_fraction() -> float:
    """The share of a GPU each trial takes (``--gpu``); 0 runs everything on the CPU."""
    return float(os.environ.get(GPU_ENV) or 0)


def device() -> str:
    """Where the in-process loops train: ``cuda`` when trials take a GPU, else ``cpu``."""
    return "cuda" if gpu_fraction() > 0 else "cpu"


def concurrency() -> int:
    """Trials at a time: one per CPU, or as many as share one GPU (``--gpu 0.25``: 4)."""
    fraction = gpu_fraction()
    return max(CPUS, round(1 / fraction)) if fraction > 0 else CPUS


def sweep_overrides() -> tuple[str, ...]:
    """Space overrides that put the sweep figures' trials on a GPU share (none on CPU)."""
    fraction = gpu_fraction()
    if fraction <= 0:
        return ()
    return (f"resources.gpu={fraction}", f"search.concurrency={concurrency()}")


def ensure_ray() -> None:
    """Start a local Ray in this process (``concurrency()`` CPUs), unless one is running.

    abl's ``run_sweep`` joins it (``init_ray`` leaves an initialized Ray alone), so abl and
    raw Tune are measured on the same Ray instance. Ray finds the GPUs itself.
    """
    import ray

    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    if ray.is_initialized():
        return
    ray.init(
        num_cpus=concurrency(),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=True,
    )


def stop_ray() -> None:
    """Shut this process's Ray down, if it runs (frees its CPUs for a subprocess's own Ray)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


@dataclass
class Stopwatch:
    """Wall-clock seconds of a ``with`` block: ``with Stopwatch() as sw: ...; sw.seconds``."""

    seconds: float = 0.0
    _start: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (None: leave torch's default), then restore."""
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def without_env(name: str) -> Iterator[None]:
    """Run the block with environment variable ``name`` unset, then put it back."""
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


def quiet_console() -> Any:
    """A rich Console that writes into memory: the progress sink runs, nothing is printed."""
    from rich.console import Console

    return Console(file=io.StringIO(), width=120)


def ignore_report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
    """A ``report`` for :func:`abl.trainables.loop.train` that drops what it is given."""
