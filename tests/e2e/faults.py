"""What the fault-injection tests share: a CLI sweep in its own session and Ray temp dir, waits
on the run directory's stores, and checks of exact counts in Parquet and MLflow.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
from mlflow.tracking import MlflowClient

from abl.results.store import read_history, read_table, read_trials
from abl.rundir import HISTORY
from tests.e2e.procs import wait_for

SPACE = """
name: rel
trainable: forecast
fixed:
  model.d_model: 16
  data.length: {length}
  data.time_steps: 32
  train.epochs: {epochs}
  train.batch_size: 64
  train.checkpoint_every_s: 0  # after every epoch: the faults land between checkpoints
grid:
  model.pe_type: [none, rope]
  model.is_causal: {causal}
resources: {{cpu: 1}}
search: {{concurrency: {concurrency}}}
"""
TRIALS = 4


class Sweep:
    """One ``abl`` process in its own session, with its own Ray temp dir."""

    def __init__(
        self,
        cwd: Path,
        *args: str,
        env: dict[str, str] | None = None,
        dashboard_port: int | None = None,
    ) -> None:
        """``env``: variables set for this sweep on top of the test's environment;
        ``dashboard_port``: start Ray's dashboard there (none by default)."""
        self.cwd = cwd
        self.ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths
        self.env = {**os.environ, **(env or {}), "RAY_TMPDIR": self.ray_tmp}
        self.env["PYTHONUNBUFFERED"] = "1"
        self.out = cwd / f"abl-{time.monotonic_ns()}.log"
        self.left: list[str] = []  # Ray processes alive after the driver exited (see wait)
        dashboard = ["--no-dashboard"]
        if dashboard_port is not None:
            dashboard = ["--dashboard-port", str(dashboard_port)]
        with self.out.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "abl", "--root", "runs", *args, *dashboard],
                cwd=cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait(self, timeout: float = 300, grace: float | None = None) -> int:
        """The driver's exit status, once it exited; then what is left of its Ray is killed. With
        ``grace``, what still ran that long after the exit is first kept in ``self.left``
        (see :meth:`left_behind`)."""
        try:
            code = self.proc.wait(timeout=timeout)
            if grace is not None:
                self.left = self.left_behind(grace)
            return code
        finally:
            self.cleanup()

    def left_behind(self, grace: float = 30) -> list[str]:
        """This sweep's Ray processes still alive ``grace`` seconds after its driver exited.

        Ray's daemons end on their own once the driver has shut Ray down, some a moment after
        it (a process that is killed is still listed until it has exited). Asked before
        :meth:`cleanup` kills them: asked after it, nothing could ever be left behind."""
        deadline = time.monotonic() + grace
        while (procs := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = []
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                left.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        return left

    @property
    def output(self) -> str:
        return self.out.read_text()

    def processes(self) -> list[psutil.Process]:
        """Every live process of this sweep's Ray (found by the RAY_TMPDIR it inherited)."""
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if proc.environ().get("RAY_TMPDIR") == self.ray_tmp and proc.pid != self.proc.pid:
                    found.append(proc)
        return found

    def workers(self) -> list[psutil.Process]:
        """The Tune trial actors (``ray::ImplicitFunc``) of this sweep."""
        out = []
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                if "ImplicitFunc" in " ".join(proc.cmdline()):
                    out.append(proc)
        return out

    def cleanup(self) -> None:
        """Kill whatever the sweep left running (Ray's daemons survive a SIGKILLed driver)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                proc.kill()


def kill_driver_when(what: str, sweep: Sweep, check: Callable[[], Any]) -> tuple[Any, float]:
    """SIGKILL the sweep's driver at a moment ``check`` holds on the run directory as it stays.

    Only the driver writes the run directory's Parquet, so ``check`` is asked again while the
    driver is stopped (SIGSTOP): what it saw cannot change before the kill, and a trial seen
    half-way cannot end in between. Returns ``check``'s value and the time of the kill.
    """
    while True:
        wait_until(what, check, sweep=sweep)
        os.kill(sweep.proc.pid, signal.SIGSTOP)
        value = None
        with contextlib.suppress(OSError, ValueError, KeyError):
            value = check()
        if value:
            os.kill(sweep.proc.pid, signal.SIGKILL)
            return value, time.time()
        os.kill(sweep.proc.pid, signal.SIGCONT)


def abl(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abl", "--root", "runs", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def wait_until(
    what: str, check: Callable[[], Any], timeout: float = 180, sweep: Sweep | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sweep is not None and sweep.proc.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}:\n{sweep.output[-2000:]}")
        with contextlib.suppress(OSError, ValueError, KeyError):
            value = check()
            if value:
                return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def project(
    tmp_path: Path,
    *,
    epochs: int = 6,
    concurrency: int = 2,
    length: int = 12000,
    trials: int = TRIALS,
) -> Path:
    """A space of ``trials`` (4 or 2); ``length`` (the series) sets how long an epoch takes."""
    causal = "[true, false]" if trials == 4 else "[true]"
    text = SPACE.format(epochs=epochs, concurrency=concurrency, length=length, causal=causal)
    (tmp_path / "rel.yaml").write_text(text)
    return tmp_path


def run_dir(cwd: Path) -> Path:
    return wait_until("the run directory", lambda: next((cwd / "runs" / "rel").iterdir(), None))


def statuses(run: Path) -> dict[str, str]:
    rows = read_trials(run).to_pylist()
    return {r["trial_id"]: r["status"] for r in rows}


def progress(run: Path) -> dict[str, int]:
    """The last step each trial reported, as the history store has it."""
    last: dict[str, int] = {}
    for row in read_history(run).select(["trial_id", "step"]).to_pylist():
        last[row["trial_id"]] = max(last.get(row["trial_id"], 0), row["step"])
    return last


def check_complete(run: Path, epochs: int = 6, trials: int = TRIALS) -> None:
    """Every trial completed with one final row, and one history row per trial and step."""
    rows = read_trials(run).to_pylist()
    assert len(rows) == trials and {t["status"] for t in rows} == {"completed"}, rows
    assert all(t["steps"] == epochs for t in rows)
    history = read_table(run / HISTORY)  # compacted at the end: no duplicate steps left
    pairs = list(zip(history["trial_id"].to_pylist(), history["step"].to_pylist(), strict=True))
    assert len(pairs) == len(set(pairs)) == trials * epochs


def check_mlflow(tracking_uri: str, n: int = TRIALS) -> list[Any]:
    """One parent run and exactly one finished child per trial; returns the children."""
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("rel")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1, [p.info.run_name for p in parents]
    assert len(children) == n
    assert len({c.data.tags["abl.trial_id"] for c in children}) == n
    assert {c.info.status for c in children} == {"FINISHED"}
    return children


def first_step_after(run: Path, trial_id: str, t: float) -> int:
    rows = [r for r in read_history(run).to_pylist() if r["trial_id"] == trial_id]
    return min(r["step"] for r in rows if r["time"] > t)


def kill_a_worker_half_way(sweep: Sweep, run: Path) -> tuple[str, float]:
    """SIGKILL the worker of the one running trial once it has a checkpoint past epoch 1."""

    def running_trial() -> str | None:
        steps = progress(run)  # Tune may start the next trial's actor early: look at reports
        busy = [k for k, v in statuses(run).items() if v == "running" and 2 <= steps.get(k, 0) <= 6]
        return busy[0] if len(busy) == 1 else None

    trial_id = wait_until("a trial half-way", running_trial)
    # The pid Ray reported with the trial's results (Tune's result.json, written with a lag).
    results = run / "tune" / trial_id / "result.json"
    pid = wait_until(
        "the trial's pid", lambda: json.loads(results.read_text().split("\n")[0])["pid"]
    )
    worker = psutil.Process(pid)
    assert worker in sweep.workers()
    worker.kill()
    return trial_id, time.time()


def attempts(run: Path, trial_id: str) -> list[tuple[int, int]]:
    """``(worker pid, first step)`` of each attempt of a trial, from Tune's result.json."""
    out: list[tuple[int, int]] = []
    for line in (run / "tune" / trial_id / "result.json").read_text().splitlines():
        result = json.loads(line)
        if not out or out[-1][0] != result["pid"]:
            out.append((result["pid"], result["training_iteration"]))
    return out


@contextlib.contextmanager
def mlflow_server(db: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``mlflow server`` on loopback, stopped (with its workers) on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
         "--artifacts-destination", str(db.parent / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def metric_steps(client: MlflowClient, children: list[Any]) -> dict[str, list[int]]:
    return {
        c.data.tags["abl.trial_id"]: sorted(
            m.step for m in client.get_metric_history(c.info.run_id, "val/loss")
        )
        for c in children
    }
