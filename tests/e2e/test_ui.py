"""``abl ui`` serves the project's MLflow store on loopback (a real server process)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

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


def test_ui_serves_the_store_of_the_results_root(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    MlflowClient(f"sqlite:///{root / 'mlflow.db'}").create_experiment("from-abl")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "abl", "--root", str(root), "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "MLflow UI did not come up"
                time.sleep(0.5)
        names = [e.name for e in MlflowClient(f"http://127.0.0.1:{port}").search_experiments()]
        assert "from-abl" in names
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode is not None
