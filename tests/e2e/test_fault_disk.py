"""A full disk under the results root, for real: the CLI sweep's ``--root`` is a small tmpfs,
filled to its last byte by a filler file once the first trial has completed.

Why a tmpfs: it gives the real ENOSPC to every writer at once (the driver's Parquet and SQLite
writes, Tune's snapshot sync, the trial workers' checkpoints), as a full disk does, and it is
gone when unmounted. Mounting one needs root (CAP_SYS_ADMIN), which these tests have here and
in CI (root on a fresh machine); a file-size limit (RLIMIT_FSIZE) would be inherited by Ray's
daemons and give EFBIG/SIGXFSZ instead, and a loop device needs root as well.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from abl.results.store import read_history, read_trials
from abl.rundir import HISTORY, TRIALS
from tests.e2e.faults import (
    Sweep,
    abl,
    check_complete,
    check_mlflow,
    metric_steps,
    project,
    run_dir,
    statuses,
    wait_until,
)

pytestmark = pytest.mark.ray


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "64m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (created), unmounted on exit."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, f"mounting a tmpfs needs root: {mounted.stderr}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(path: Path) -> Path:
    """Write zeros to ``path`` until its filesystem has no byte left."""
    with path.open("wb", buffering=0) as f:
        for chunk in (1 << 20, 4096):
            with contextlib.suppress(OSError):
                while True:
                    f.write(bytes(chunk))
    return path


def test_a_full_disk_stops_the_sweep_in_one_line_and_resume_finishes(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    with small_filesystem(cwd / "runs") as root:
        sweep = Sweep(cwd, "search", "rel.yaml")
        run = run_dir(cwd)
        wait_until("a completed trial", lambda: "completed" in statuses(run).values(), sweep=sweep)
        filler = fill(root / "filler")

        # It stops at the first ENOSPC, in one line, exit 1, with nothing left running.
        assert sweep.wait(timeout=120, grace=30) == 1, sweep.output
        out = sweep.output
        line = (
            "no space left on device under runs; free space and resume with: "
            f"abl --root runs search --resume runs/rel/{run.name}"
        )
        assert out.count(line) == 1, out
        for noise in ("Traceback", "Aborted", "errored", "warning", "No space left"):
            assert noise not in out, out
        assert not sweep.left, f"the stopped sweep left Ray processes behind: {sweep.left}"

        # What was written before stays readable; no trial is marked errored for the disk.
        before = statuses(run)
        assert "completed" in before.values() and "errored" not in before.values(), before
        assert set(before.values()) <= {"completed", "running"}, before
        assert pq.read_table(run / TRIALS).num_rows >= len(before)
        assert pq.read_table(run / HISTORY).num_rows == read_history(run).num_rows > 0
        done = {k: r for k, r in ((r["trial_id"], r) for r in read_trials(run).to_pylist())}
        done = {k: r for k, r in done.items() if r["status"] == "completed"}

        filler.unlink()
        resumed = abl(cwd, "search", "--resume", f"runs/rel/{run.name}", "--no-dashboard")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        check_complete(run)  # 4 rows, all completed, 6 steps each, 24 history rows
        after = {r["trial_id"]: r for r in read_trials(run).to_pylist()}
        assert set(before) <= set(after)
        for trial_id, row in done.items():  # a trial that completed keeps its row
            assert after[trial_id]["end"] == row["end"]
        uri = f"sqlite:///{root / 'mlflow.db'}"
        children = check_mlflow(uri)
        client = MlflowClient(uri)
        steps = metric_steps(client, children)
        assert {t: sorted(set(s)) for t, s in steps.items()} == {
            t: [1, 2, 3, 4, 5, 6] for t in after
        }
