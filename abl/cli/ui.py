"""``abl ui``: the MLflow UI on 127.0.0.1 over this project's tracking store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import click

from abl.cli import AblContext
from abl.redact import redact
from abl.search.engine import default_tracking_uri


@click.command("ui")
@click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    default=None,
    help="Store to browse [default: $MLFLOW_TRACKING_URI, else sqlite:///ROOT/mlflow.db].",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind; anything but loopback exposes your runs to the network.",
)
@click.option("--port", default=5000, show_default=True, type=int)
@click.pass_obj
def command(obj: AblContext, tracking_uri: str | None, host: str, port: int) -> None:
    """Serve the MLflow UI over the sweeps' tracking store (Ctrl-C stops it)."""
    uri = tracking_uri or default_tracking_uri(obj.root)
    if uri.startswith("http"):
        raise click.BadParameter(
            f"{uri} is a tracking server already: open it in a browser", param_hint="--tracking-uri"
        )
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
    ]
    # MLflow's job runner (GenAI judges; abl uses none) starts 7 workers and delays Ctrl-C by
    # ~30 s; MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true keeps it.
    env = {**os.environ}
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    server = subprocess.Popen(cmd, env=env)
    # A supervisor's SIGTERM reaches MLflow too; Ctrl-C reaches the whole process group anyway.
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}"
    try:
        if _answers(server, f"{url}/health"):
            click.echo(f"MLflow UI for {redact(uri)} at {url} (Ctrl-C stops it)", err=True)
        sys.exit(server.wait())
    except KeyboardInterrupt:
        sys.exit(server.wait())


def _answers(server: subprocess.Popen[bytes], health: str, timeout_s: float = 120.0) -> bool:
    """Wait until the server answers ``health``; False if it exited first (its error is shown)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(health, timeout=2) as reply:
                if reply.status == 200:
                    return True
        except OSError:
            time.sleep(0.25)
    return False
