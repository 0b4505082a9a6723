"""What a user sees and keeps under faults: Ctrl-C pressed again while a sweep stops, a trial's
worker killed, a tracking server gone mid-sweep. Each is a real ``python -m abl`` sweep (see
tests/e2e/faults.py); the output must be abl's own lines, one per event, and no data lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from abl.errors import AblWarning
from abl.results.store import read_history
from abl.search.sinks import MLflowSink, SweepInfo
from abl.search.sweep import HURRYING, STOPPING
from tests.e2e.faults import (
    Sweep,
    abl,
    check_complete,
    check_mlflow,
    kill_a_worker_half_way,
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

# Python's own form of a warning: "file.py:12: SomeWarning: text", then the source line.
_PY_WARNING = re.compile(r"\.py:\d+: \w*Warning\b|^\s*warnings\.warn\(", re.M)


def quiet(output: str, longest: int = 300) -> None:
    """Only abl's lines: no library's traceback, Python warning, raylet or MLflow URL lines."""
    assert "Traceback" not in output and "Aborted!" not in output, output
    assert not _PY_WARNING.search(output), output
    assert "(raylet)" not in output and "View run" not in output, output
    assert max(map(len, output.splitlines()), default=0) <= longest, output


def test_ctrl_c_again_hurries_the_stop_but_never_skips_the_writes(tmp_path: Path) -> None:
    """Ctrl-C, then Ctrl-C every 50 ms until it exits: Tune stops on the first; none of the
    others escapes as a KeyboardInterrupt (click's ``Aborted!``) past the sinks' flush and
    compaction, however late in the stop it comes."""
    # One trial at a time: when the history store (flushed every 2 s) shows a trial at its
    # second epoch of eight, the sweep is far from done, so the Ctrl-C lands while Tune runs.
    cwd = project(tmp_path, epochs=8, concurrency=1)
    sweep = Sweep(cwd, "search", "rel.yaml")
    run = run_dir(cwd)
    wait_until("a trial half-way", lambda: any(s >= 2 for s in progress(run).values()))
    os.kill(sweep.proc.pid, signal.SIGINT)
    # Tune takes the first and puts abl's handler back at once; its stop (trial actors ended,
    # state saved, sinks flushed) takes far longer than the 50 ms to the second.
    sent = 1
    while sweep.proc.poll() is None and sent < 400:
        time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):  # it may have exited meanwhile
            os.kill(sweep.proc.pid, signal.SIGINT)
            sent += 1
    assert sweep.wait(timeout=120, grace=30) == 130, sweep.output
    out = sweep.output
    assert sent >= 2, out  # a second Ctrl-C did come while the sweep was stopping
    assert f"resume with: abl --root runs search --resume runs/rel/{run.name}" in out
    assert out.count(STOPPING) == 1 and out.count(HURRYING) == 1, out
    assert "interrupted: " in out, out
    quiet(out)
    assert not sweep.left, f"the interrupted sweep left Ray processes behind: {sweep.left}"
    # Every report Tune received is in history.parquet; MLflow knows the sweep was interrupted.
    reported = sum(1 for p in (run / "tune").glob("*/result.json") for _ in p.open())
    assert read_history(run).num_rows == reported > 0
    client = MlflowClient(f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("rel")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "KILLED"
    assert "RUNNING" not in {r.info.status for r in runs}, [r.info.status for r in runs]

    resumed = abl(cwd, "search", "--resume", f"runs/rel/{run.name}", "--no-dashboard")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    check_complete(run, epochs=8)
    check_mlflow(f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_a_killed_worker_is_one_line_of_abl_not_rays_raylet_line(tmp_path: Path) -> None:
    cwd = project(tmp_path, epochs=6, concurrency=1, length=40000, trials=2)
    sweep = Sweep(cwd, "search", "rel.yaml", "--max-failures", "1")
    run = run_dir(cwd)
    trial_id, _ = kill_a_worker_half_way(sweep, run)
    assert sweep.wait() == 0, sweep.output
    check_complete(run, epochs=6, trials=2)
    (line,) = [x for x in sweep.output.splitlines() if "retrying" in x or "died" in x]
    assert line.startswith(f"trial {trial_id} failed, retrying from its last checkpoint: ")
    quiet(sweep.output)


def test_a_tracking_server_outage_is_one_warning_and_abl_sync_prints_no_mlflow_urls(
    tmp_path: Path,
) -> None:
    cwd = project(tmp_path, epochs=2, concurrency=1, trials=2)
    db, port = tmp_path / "server" / "mlflow.db", free_port()
    db.parent.mkdir()
    uri = f"http://127.0.0.1:{port}"
    with mlflow_server(db, port) as server:
        sweep = Sweep(cwd, "search", "rel.yaml", "--tracking-uri", uri)
        run = run_dir(cwd)
        wait_until("a finished trial", lambda: "completed" in statuses(run).values(), sweep=sweep)
        os.killpg(server.pid, signal.SIGKILL)
        assert sweep.wait() == 0, sweep.output
    check_complete(run, epochs=2, trials=2)
    out = sweep.output
    (warned,) = [x for x in out.splitlines() if "MLflowSink" in x]
    assert warned.startswith("abl: warning: MLflowSink: ") and "Connection refused" in warned
    assert "HTTPConnectionPool" not in out  # urllib3's retry wrapper, cut to its cause
    assert "not complete in MLflow" in out
    quiet(out)

    with mlflow_server(db, port):
        synced = abl(cwd, "sync", "rel")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert "metric values sent" in synced.stdout
        quiet(synced.stdout + synced.stderr)
        children = check_mlflow(uri, n=2)
        assert metric_steps(MlflowClient(uri), children) == {t: [1, 2] for t in statuses(run)}


@pytest.mark.parametrize("hurried", [False, True])
def test_a_hurried_mlflow_sink_closes_without_one_more_try_of_a_failing_store(
    tmp_path: Path, hurried: bool
) -> None:
    """What a second Ctrl-C saves with a tracking server down: the close's last try (one
    request timeout); the runs stay pending for ``abl sync``."""
    calls: list[str] = []

    class Down:
        def __getattr__(self, name: str):
            def call(*args: object, **kwargs: object) -> None:
                calls.append(name)
                raise ConnectionError("the tracking server is down")

            return call

    sweep = SweepInfo("rel", tmp_path, "val/loss", "min", tmp_path / "space.yaml", 2, "http://x")
    sink = MLflowSink(tracking_uri="http://127.0.0.1:9", background=False)
    sink._client = Down()
    with pytest.warns(AblWarning, match="opening the MLflow experiment failed"):
        sink.open(sweep)
    calls.clear()
    if hurried:
        sink.hurry()
    sink.close()
    assert len(calls) == (0 if hurried else 1), calls
    assert sink.pending == 2
