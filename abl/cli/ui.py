"""``abl ui``: the MLflow UI on 127.0.0.1 over this project's tracking store."""

from __future__ import annotations

import os
import sys

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
    click.echo(f"MLflow UI for {redact(uri)} on http://{host}:{port} (Ctrl-C stops it)", err=True)
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
    # Become the MLflow server: signals (Ctrl-C, a supervisor's SIGTERM) reach it directly.
    os.execve(sys.executable, cmd, env)
