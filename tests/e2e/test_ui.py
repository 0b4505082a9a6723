"""``abl ui`` serves the project's MLflow store on loopback (a real server process)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.e2e.procs import free_port, stop_group, wait_for


@contextlib.contextmanager
def serve_ui(root: Path, *, cwd: Path) -> Iterator[int]:
    """Run ``abl ui`` in its own process group; Ctrl-C (SIGINT to the group) stops all of it."""
    port = free_port()
    log = cwd / f"abl-ui-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "abl", "--root", str(root), "ui", "--port", str(port)],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=out,
            start_new_session=True,
        )
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        # abl prints the address once the server answers, not before
        line = f"at http://127.0.0.1:{port} (Ctrl-C stops it)"
        deadline = time.monotonic() + 30
        while line not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert line in log.read_text(), log.read_text()
        yield port
    finally:
        stopped = stop_group(proc, signal.SIGINT)
        assert stopped, "abl ui left processes running after Ctrl-C"


def test_ui_serves_the_store_of_the_results_root(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    MlflowClient(f"sqlite:///{root / 'mlflow.db'}").create_experiment("from-abl")
    with serve_ui(root, cwd=tmp_path) as port:
        names = [e.name for e in MlflowClient(f"http://127.0.0.1:{port}").search_experiments()]
        assert "from-abl" in names
