"""``abl ui`` serves the project's MLflow store on loopback (a real server process)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from mlflow.tracking import MlflowClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 120) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} did not come up"
        time.sleep(0.5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def serve_ui(root: Path, *, cwd: Path) -> Iterator[int]:
    """Run ``abl ui`` in its own process group; Ctrl-C (SIGINT to the group) stops all of it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "abl", "--root", str(root), "ui", "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            proc.poll()
            time.sleep(0.2)
        stopped = not _group_alive(proc.pid)
        if not stopped:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert stopped, "abl ui left processes running after Ctrl-C"


def test_ui_serves_the_store_of_the_results_root(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    MlflowClient(f"sqlite:///{root / 'mlflow.db'}").create_experiment("from-abl")
    with serve_ui(root, cwd=tmp_path) as port:
        names = [e.name for e in MlflowClient(f"http://127.0.0.1:{port}").search_experiments()]
        assert "from-abl" in names
