"""Figure ``driver_memory``: the abl driver's peak RSS over a 1,000-trial sweep.

    python -m bench --only driver_memory

Runs ``python -m abl --root TMP search bench/spaces/noop.yaml repeats=1000 --no-dashboard``
(50 trials with ``--quick``) as a subprocess with its own local Ray, and reads the driver's
peak RSS (``VmHWM`` in ``/proc/<pid>/status``, which the kernel keeps as a high-water mark)
every 0.2 s until it exits. The driver holds every trial's record, Tune's trial objects and
the sinks' buffers, so this is where a sweep's size shows. Ray's own processes (GCS, raylet,
workers) are summed separately, for information. The sweep's wall time per trial comes along.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._env import NOOP_SPACE, stop_ray
from bench._figure import Figure, below

REPEATS = 1
TRIALS, QUICK_TRIALS = 1_000, 50
POLL_S = 0.2
GIB = 1024**3


def status_kib(pid: int, field: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``), or None if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from the parent ids in ``/proc/*/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def watch(proc: subprocess.Popen[bytes]) -> tuple[int, int, float]:
    """Wait for ``proc``: its peak RSS, the peak summed RSS of its descendants (bytes), seconds."""
    start = time.perf_counter()
    driver_kib = tree_kib = 0
    while True:
        # Read before polling: once reaped, /proc/<pid> is gone. (wait4's ru_maxrss would not
        # do: it is the largest of the driver and the Ray processes it reaped.)
        driver_kib = max(driver_kib, status_kib(proc.pid, "VmHWM") or 0)
        if proc.poll() is not None:
            break
        tree = sum(status_kib(p, "VmRSS") or 0 for p in descendants(proc.pid))
        tree_kib = max(tree_kib, tree)
        time.sleep(POLL_S)
    return driver_kib * 1024, tree_kib * 1024, time.perf_counter() - start


def run(quick: bool) -> Figure:
    """Peak RSS of ``abl search`` over ``TRIALS`` no-op trials, in its own process."""
    n = QUICK_TRIALS if quick else TRIALS
    fig = Figure("driver_memory", f"peak RSS of the abl driver over {n:,} no-op trials")
    if not Path("/proc/self/status").exists():
        fig.skipped = "needs Linux's /proc to read a process's peak RSS"
        return fig
    stop_ray()  # the subprocess starts its own Ray; leave it the CPUs
    with tempfile.TemporaryDirectory(prefix="abl-bench-memory-") as tmp:
        cmd = [sys.executable, "-m", "abl", "--root", tmp, "search", str(NOOP_SPACE)]
        cmd += [f"repeats={n}", "--no-dashboard"]
        env = {**os.environ, "RAY_ADDRESS": "local"}  # a new local Ray, never a running one
        log = Path(tmp) / "stderr.txt"
        with log.open("wb") as stderr:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            driver, tree, seconds = watch(proc)
        err = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"abl search exited {proc.returncode}: {err.strip()[-2000:]}")
    fig.add("driver peak RSS", driver / GIB, "GiB", below(1.0))
    fig.add("Ray processes' peak summed RSS", tree / GIB, "GiB")
    fig.add("sweep wall time per trial (CLI, own Ray)", seconds / n, "s/trial")
    fig.notes.append(f"command: abl search bench/spaces/noop.yaml repeats={n} --no-dashboard")
    return fig
