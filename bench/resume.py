"""Figure ``resume``: what a killed driver costs, compared with a sweep that was never stopped.

    python -m bench --only resume

The same sweep runs twice through the CLI (``python -m abl search``), each in a fresh process
with its own Ray: once uninterrupted, and once SIGKILLed when half of its reports are in, then
finished with ``abl search --resume RUN``. The ratio of the interrupted pair's total wall time
to the uninterrupted sweep's is the figure; Ray's own restore test uses 1.5 as its bar. Both
include starting Ray, so the resume also pays a second start: a new process, its imports, a
new Ray and new trial workers, about 10 s here whatever the sweep's length, so the faster the
sweep, the higher the ratio (the added seconds are printed too).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._figure import Figure, at_most

REPEATS = 1
OVERRIDES = (
    "model.pe_type=none,sinpe,rope,randpe", "model.is_causal=true,false", "repeats=2",
    "train.epochs=6", "data.length=6000", "model.d_model=16", "search.concurrency=2",
)  # fmt: skip
QUICK_OVERRIDES = (*OVERRIDES, "model.pe_type=none,rope", "repeats=1")


def _start(root: Path, args: list[str], ray_tmp: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    root.mkdir(parents=True, exist_ok=True)
    with (root / "abl.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "abl", "--root", str(root), *args, "--no-dashboard"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _failed(root: Path, what: str) -> RuntimeError:
    tail = (root / "abl.log").read_text(errors="replace").strip().splitlines()[-5:]
    return RuntimeError(f"{what}: " + " | ".join(tail))


def _kill_ray(ray_tmp: str) -> None:
    """Stop the Ray processes a SIGKILLed driver leaves behind (found by their RAY_TMPDIR)."""
    import psutil

    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("RAY_TMPDIR") == ray_tmp:
                proc.kill()


def _reports(root: Path) -> int:
    from abl.results.store import read_history

    runs = list(root.glob("quickstart/*/history.parquet"))
    return read_history(runs[0].parent).num_rows if runs else 0


def _sweep(root: Path, overrides: tuple[str, ...], *, kill_at: int | None = None) -> float:
    """Wall seconds of one CLI sweep; with ``kill_at``, SIGKILL it at that many reports."""
    ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")
    start = time.perf_counter()
    proc = _start(root, ["search", "quickstart", *overrides], ray_tmp)
    try:
        if kill_at is None:
            if proc.wait(timeout=1800) != 0:
                raise _failed(root, "the uninterrupted sweep failed")
            return time.perf_counter() - start
        while _reports(root) < kill_at:
            if proc.poll() is not None:
                raise _failed(root, "the sweep ended before it was killed")
            time.sleep(0.2)
        proc.kill()
        proc.wait()
    finally:
        _kill_ray(ray_tmp)
    resume = _start(root, ["search", "--resume", "quickstart"], ray_tmp)
    try:
        if resume.wait(timeout=1800) != 0:
            raise _failed(root, "the resumed sweep failed")
    finally:
        _kill_ray(ray_tmp)
    return time.perf_counter() - start


def run(quick: bool) -> Figure:
    """An uninterrupted sweep against a SIGKILLed one plus its resume."""
    from abl.space import count_trials, load_space

    overrides = QUICK_OVERRIDES if quick else OVERRIDES
    n = count_trials(load_space("quickstart", list(overrides)))
    reports = n * 6
    fig = Figure("resume", f"{n} trials of quickstart: SIGKILL at half the reports + resume")
    with tempfile.TemporaryDirectory(prefix="abl-bench-resume-") as tmp:
        whole = _sweep(Path(tmp) / "whole", overrides)
        broken = _sweep(Path(tmp) / "broken", overrides, kill_at=reports // 2)
    fig.add("killed + resumed / uninterrupted", broken / whole, "x", at_most(1.5))
    fig.add("uninterrupted sweep", whole, "s")
    fig.add("killed at half, then resumed (both parts)", broken, "s")
    fig.add("what the kill and the second start added", broken - whole, "s")
    fig.notes.append(f"overrides: {' '.join(overrides)}; each part starts its own local Ray")
    return fig
