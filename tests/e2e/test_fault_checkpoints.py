"""A driver SIGKILLed while Tune's experiment snapshot names a checkpoint already pruned.

Tune keeps one checkpoint per trial (``num_to_keep=1``): registering a trial's new checkpoint
deletes the one before it, and the snapshot that names the new one is written a moment
later. A driver killed in between leaves a snapshot naming a checkpoint that is gone; Tune
alone would error that trial for good on resume. ``TUNE_GLOBAL_CHECKPOINT_S`` is Tune's
snapshot period; the test kills the driver at a moment the snapshot on disk lags behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from abl.results.store import read_history
from tests.e2e.faults import (
    Sweep,
    abl,
    check_complete,
    check_mlflow,
    first_step_after,
    metric_steps,
    project,
    run_dir,
    wait_until,
)

pytestmark = pytest.mark.ray

EPOCHS = 6


def lagging_snapshot(run: Path) -> tuple[str, str] | None:
    """``(trial id, checkpoint)`` of a running trial whose checkpoint in Tune's newest
    snapshot is no longer on disk (pruned after the snapshot was written)."""
    snapshots = sorted((run / "tune").glob("experiment_state-*.json"))
    if not snapshots:
        return None
    for trial_json, meta_json in json.loads(snapshots[-1].read_text())["trial_data"]:
        trial, meta = json.loads(trial_json), json.loads(meta_json)
        name = (meta.get("last_result") or {}).get("checkpoint_dir_name")
        trial_dir = run / "tune" / trial["trial_id"]
        if trial["status"] == "RUNNING" and name and not (trial_dir / name).exists():
            return trial["trial_id"], name
    return None


def kill_while_the_snapshot_lags(sweep: Sweep, run: Path) -> tuple[str, str, float]:
    """SIGKILL the driver while its snapshot names a pruned checkpoint; returns the trial,
    that checkpoint and when. The lag lasts a fraction of a second: the driver is stopped
    (SIGSTOP) once it is seen, and killed only if the files still show it then."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert sweep.proc.poll() is None, f"the sweep ended first:\n{sweep.output[-2000:]}"
        try:
            seen = lagging_snapshot(run)
        except (OSError, ValueError, KeyError):  # a snapshot being replaced
            seen = None
        if seen:
            os.kill(sweep.proc.pid, signal.SIGSTOP)
            try:
                still = lagging_snapshot(run)
            except (OSError, ValueError, KeyError):
                still = None
            if still:
                os.kill(sweep.proc.pid, signal.SIGKILL)
                killed_at = time.time()
                sweep.wait()
                return *still, killed_at
            os.kill(sweep.proc.pid, signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError("timed out waiting for a snapshot that names a pruned checkpoint")


def checkpoints(run: Path, trial_id: str) -> list[str]:
    return sorted(p.name for p in (run / "tune" / trial_id).glob("checkpoint_*"))


def history_steps(run: Path) -> dict[str, list[int]]:
    steps: dict[str, list[int]] = {}
    for row in read_history(run).select(["trial_id", "step"]).to_pylist():
        steps.setdefault(row["trial_id"], []).append(row["step"])
    return {k: sorted(v) for k, v in steps.items()}


def start(tmp_path: Path) -> tuple[Path, Path, str, str, float]:
    cwd = project(tmp_path, epochs=EPOCHS, length=16000, trials=2)
    sweep = Sweep(cwd, "search", "rel.yaml", env={"TUNE_GLOBAL_CHECKPOINT_S": "5"})
    run = run_dir(cwd)
    wait_until("Tune's first snapshot", lambda: list((run / "tune").glob("experiment_*.json")))
    trial_id, lost, killed_at = kill_while_the_snapshot_lags(sweep, run)
    return cwd, run, trial_id, lost, killed_at


def check_stores(cwd: Path, run: Path) -> None:
    """Exact rows in Parquet, every child run finished, and MLflow's steps those of Parquet."""
    check_complete(run, epochs=EPOCHS, trials=2)
    uri = f"sqlite:///{cwd / 'runs' / 'mlflow.db'}"
    steps = metric_steps(MlflowClient(uri), check_mlflow(uri, n=2))
    assert steps == history_steps(run) == {k: list(range(1, EPOCHS + 1)) for k in steps}


def test_a_pruned_checkpoint_gives_way_to_the_newest_one_on_disk(tmp_path: Path) -> None:
    cwd, run, trial_id, lost, killed_at = start(tmp_path)
    left = checkpoints(run, trial_id)
    assert lost not in left and left, left  # the fault: Tune's snapshot names a deleted one

    resumed = abl(cwd, "search", "--resume", "rel", "--no-dashboard")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    said = re.search(
        rf"trial {trial_id}: {lost} is gone from storage; continues from "
        r"(checkpoint_\d+), saved at epoch (\d+)\n",
        resumed.stdout,
    )
    assert said, resumed.stdout
    assert said.group(1) in left
    assert first_step_after(run, trial_id, killed_at) == int(said.group(2)) + 1  # not epoch 1
    check_stores(cwd, run)


def test_a_trial_with_no_checkpoint_left_starts_again(tmp_path: Path) -> None:
    cwd, run, trial_id, lost, killed_at = start(tmp_path)
    # The folders left are the checkpoints written after the snapshot. Deleting them models a
    # trial whose only checkpoint was pruned (its newer one never completed, or was lost).
    for name in checkpoints(run, trial_id):
        shutil.rmtree(run / "tune" / trial_id / name)

    resumed = abl(cwd, "search", "--resume", "rel", "--no-dashboard")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    line = f"trial {trial_id}: {lost} is gone from storage and no checkpoint is left; "
    assert line + "starts again from epoch 1\n" in resumed.stdout, resumed.stdout
    assert first_step_after(run, trial_id, killed_at) == 1
    check_stores(cwd, run)
