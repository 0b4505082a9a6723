"""Faults injected for real into CLI sweeps: SIGKILL and Ctrl-C of the driver, a trial's worker
killed by pid, a tracking server stopped mid-sweep, two sweeps into one SQLite store.

Each sweep runs ``python -m abl`` in its own session with its own ``RAY_TMPDIR``, so that the
Ray processes a killed driver leaves behind can be found (by that environment) and stopped.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from abl.results.store import read_history, read_trials
from tests.e2e.faults import (
    Sweep,
    abl,
    attempts,
    check_complete,
    check_mlflow,
    first_step_after,
    kill_a_worker_half_way,
    kill_driver_when,
    metric_steps,
    mlflow_server,
    progress,
    project,
    run_dir,
    statuses,
    wait_until,
)
from tests.e2e.procs import free_port

pytestmark = pytest.mark.ray


def test_sigkilled_driver_resumes_without_rerunning_or_duplicating(tmp_path: Path) -> None:
    cwd = project(tmp_path, length=40000)  # epochs long enough to catch a trial half-way
    sweep = Sweep(cwd, "search", "rel.yaml")
    run = run_dir(cwd)

    def ready() -> list[str]:  # a trial done; the running ones past epoch 1, an epoch to go
        status = statuses(run)
        if "completed" not in status.values():
            return []
        return [k for k, s in progress(run).items() if status[k] == "running" and 2 <= s < 6]

    in_flight, killed_at = kill_driver_when("one finished trial and one half-way", sweep, ready)
    sweep.wait()
    before = {r["trial_id"]: r for r in read_trials(run).to_pylist()}

    resumed = abl(cwd, "search", "--resume", "rel", "--no-dashboard")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming runs/rel/{run.name}" in resumed.stdout

    check_complete(run)
    after = {r["trial_id"]: r for r in read_trials(run).to_pylist()}
    for trial_id, row in before.items():
        if row["status"] == "completed":  # not run again
            assert after[trial_id]["start"] == row["start"]
            assert after[trial_id]["end"] == row["end"]
    for trial_id in in_flight:  # continued from its checkpoint, not from epoch 1
        row = after[trial_id]
        assert row["start"] == before[trial_id]["start"]
        assert first_step_after(run, trial_id, killed_at) > 1
        # the seconds the driver was dead (at least the resume's own start-up) are not run time
        assert row["paused_s"] >= 2.0
        assert row["wall_s"] == pytest.approx(row["end"] - row["start"] - row["paused_s"])
    check_mlflow(f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_cleanly_prints_the_resume_command_and_resume_finishes(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C, or SIGTERM from systemd or Kubernetes, which abl turns into a Ctrl-C."""
    cwd = project(tmp_path)
    sweep = Sweep(cwd, "search", "rel.yaml")
    run = run_dir(cwd)
    wait_until("a trial half-way", lambda: any(s >= 2 for s in progress(run).values()))
    os.kill(sweep.proc.pid, sig)
    assert sweep.wait(timeout=120, grace=30) == 130, sweep.output
    assert f"resume with: abl --root runs search --resume runs/rel/{run.name}" in sweep.output
    assert "Traceback" not in sweep.output
    assert not sweep.left, f"the interrupted sweep left Ray processes behind: {sweep.left}"
    # The sinks flushed: every report Tune received is in history.parquet, and MLflow knows
    # the sweep was interrupted (its parent run is KILLED, resumable).
    reported = sum(1 for p in (run / "tune").glob("*/result.json") for _ in p.open())
    assert read_history(run).num_rows == reported > 0
    client = MlflowClient(f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("rel")
    parent = client.search_runs([exp.experiment_id], "tags.`abl.sweep` = 'rel'")[0]
    assert parent.info.status == "KILLED"

    resumed = abl(cwd, "search", "--resume", f"runs/rel/{run.name}", "--no-dashboard")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    check_complete(run)
    check_mlflow(f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_a_killed_trial_worker_is_retried_from_its_checkpoint(tmp_path: Path) -> None:
    cwd = project(tmp_path, epochs=8, concurrency=1, length=60000, trials=2)
    sweep = Sweep(cwd, "search", "rel.yaml", "--max-failures", "1")
    run = run_dir(cwd)
    trial_id, killed_at = kill_a_worker_half_way(sweep, run)
    assert sweep.wait() == 0, sweep.output
    check_complete(run, epochs=8, trials=2)
    (_, first), (_, retried) = attempts(run, trial_id)  # a second worker took over...
    assert first == 1 and retried > 1  # ...from a checkpoint: a fresh start would report 1
    assert first_step_after(run, trial_id, killed_at) == retried
    # The failure is one line of abl's, not Tune's traceback (that is for -v).
    assert f"trial {trial_id} failed, retrying from its last checkpoint: " in sweep.output
    assert "Traceback" not in sweep.output and "Trial task failed" not in sweep.output


def test_an_errored_trial_runs_again_with_retry_errored(tmp_path: Path) -> None:
    cwd = project(tmp_path, epochs=8, concurrency=1, length=60000, trials=2)
    sweep = Sweep(cwd, "search", "rel.yaml", "--max-failures", "0")
    run = run_dir(cwd)
    trial_id, _ = kill_a_worker_half_way(sweep, run)
    assert sweep.wait() == 1, sweep.output  # a trial errored: the others' results are written
    row = next(r for r in read_trials(run).to_pylist() if r["trial_id"] == trial_id)
    assert row["status"] == "errored", sweep.output
    assert "died" in row["error"].lower(), row["error"]
    assert f"trial {trial_id} errored: " in sweep.output
    assert "Traceback" not in sweep.output and "Trial task failed" not in sweep.output

    plain = abl(cwd, "search", "--resume", "rel", "--no-dashboard")  # errored stays errored
    assert plain.returncode == 1, plain.stdout + plain.stderr
    assert statuses(run)[trial_id] == "errored"
    retried_at = time.time()
    retry = abl(cwd, "search", "--resume", "rel", "--retry-errored", "--no-dashboard")
    assert retry.returncode == 0, retry.stdout + retry.stderr
    check_complete(run, epochs=8, trials=2)
    (_, first), (_, retried) = attempts(run, trial_id)
    assert first == 1 and retried > 1  # from its last checkpoint, not from epoch 1
    assert first_step_after(run, trial_id, retried_at) == retried
    check_mlflow(f"sqlite:///{cwd / 'runs' / 'mlflow.db'}", n=2)


def test_tracking_server_down_mid_sweep_then_abl_sync_fills_the_gap(tmp_path: Path) -> None:
    cwd = project(tmp_path, epochs=4)
    db, port = tmp_path / "server" / "mlflow.db", free_port()
    db.parent.mkdir()
    uri = f"http://127.0.0.1:{port}"
    with mlflow_server(db, port) as server:
        sweep = Sweep(cwd, "search", "rel.yaml", "--tracking-uri", uri)
        run = run_dir(cwd)
        wait_until("a finished trial", lambda: "completed" in statuses(run).values())
        os.killpg(server.pid, signal.SIGKILL)
        assert sweep.wait() == 0, sweep.output
    # The sweep finished on its own; Parquet has everything; the user is told what to do.
    check_complete(run, epochs=4)
    assert "not complete in MLflow" in sweep.output
    assert f"abl --root runs sync runs/rel/{run.name}" in sweep.output

    with mlflow_server(db, port):
        synced = abl(cwd, "sync", "rel")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert "metric values sent" in synced.stdout
        client = MlflowClient(uri)
        children = check_mlflow(uri)
        steps = metric_steps(client, children)
        assert steps == {t: [1, 2, 3, 4] for t in statuses(run)}
        ids = {r["trial_id"]: r["mlflow_run_id"] for r in read_trials(run).to_pylist()}
        assert ids == {c.data.tags["abl.trial_id"]: c.info.run_id for c in children}
        again = abl(cwd, "sync", "rel")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already has all 4 trials" in again.stdout
        assert metric_steps(client, check_mlflow(uri)) == steps


def test_two_sweeps_at_once_share_one_sqlite_store(tmp_path: Path) -> None:
    cwd = project(tmp_path, epochs=2, concurrency=1)
    sweeps = [Sweep(cwd, "search", "rel.yaml"), Sweep(cwd, "search", "rel.yaml")]
    codes = [s.wait() for s in sweeps]
    outputs = "\n".join(s.output for s in sweeps)
    assert codes == [0, 0], outputs
    assert "database is locked" not in outputs and "RuntimeWarning" not in outputs
    runs = sorted((cwd / "runs" / "rel").iterdir())
    assert len(runs) == 2
    ids = [set(statuses(r)) for r in runs]
    for run in runs:
        check_complete(run, epochs=2)
    assert not ids[0] & ids[1]
    client = MlflowClient(f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("rel")
    for run, trial_ids in zip(runs, ids, strict=True):
        parent = client.search_runs([exp.experiment_id], f"tags.`abl.run_dir` = '{run}'")
        assert len(parent) == 1
        query = f"tags.`mlflow.parentRunId` = '{parent[0].info.run_id}'"
        children = client.search_runs([exp.experiment_id], query)
        assert {c.data.tags["abl.trial_id"] for c in children} == trial_ids
