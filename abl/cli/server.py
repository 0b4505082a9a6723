"""``abl server``: an MLflow tracking server that sweeps on several machines log into.

abl server --backend-store-uri postgresql://mlflow@db-host:5432/mlflow --artifacts-destination /srv/mlflow-artifacts

Sweeps then point at it: ``abl search SPACE --tracking-uri http://HOST:PORT``. Artifacts (space
files, reports, digests) are uploaded through the server (``--serve-artifacts``), so clients
need no access to the artifact store themselves.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from abl.cli import AblContext
from abl.errors import AblError
from abl.redact import redact

SCHEMES = ("postgresql", "sqlite")  # with an optional driver: postgresql+psycopg2://
LOOPBACK = ("127.0.0.1", "localhost", "::1")
FORM = "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE or sqlite:///PATH"


@click.command("server")
@click.option(
    "--backend-store-uri",
    envvar="ABL_BACKEND_STORE_URI",
    default=None,
    help=f"Where runs are stored: {FORM} [default: sqlite:///ROOT/mlflow.db; env ABL_BACKEND_STORE_URI].",
)
@click.option(
    "--artifacts-destination",
    default=None,
    help="Where the server keeps artifacts: a directory or s3://, gs://, ... [default: ROOT/mlartifacts].",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind; 0.0.0.0 serves other machines (use a private network).",
)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1),
    help="Server processes [default: MLflow's, 4].",
)
@click.option(
    "--allowed-hosts",
    default=None,
    help="Host headers to accept instead of MLflow's default (localhost, private IPs), e.g. "
    "'mlflow.lab.org:*,localhost:*' when clients use a DNS name.",
)
@click.pass_obj
def command(
    obj: AblContext,
    backend_store_uri: str | None,
    artifacts_destination: str | None,
    host: str,
    port: int,
    workers: int | None,
    allowed_hosts: str | None,
) -> None:
    """Serve MLflow tracking for a team: PostgreSQL (or SQLite) runs, artifacts served over HTTP.

    \b
    abl server --backend-store-uri postgresql://mlflow@db:5432/mlflow --host 0.0.0.0
    abl search quickstart --tracking-uri http://HOST:5000     # on any machine
    """
    root = obj.root.resolve()
    if backend_store_uri is None:
        root.mkdir(parents=True, exist_ok=True)
    uri = check_backend_uri(backend_store_uri or f"sqlite:///{root / 'mlflow.db'}")
    artifacts = artifacts_destination or str(root / "mlartifacts")
    cmd = [sys.executable, "-m", "mlflow", "server"]
    cmd += ["--serve-artifacts", "--artifacts-destination", artifacts]
    cmd += ["--host", host, "--port", str(port)]
    cmd += ["--workers", str(workers)] if workers else []
    cmd += ["--allowed-hosts", allowed_hosts] if allowed_hosts else []
    click.echo(
        f"MLflow tracking server for {redact(uri)} on http://{host}:{port} (Ctrl-C stops it)\n"
        f"sweeps log to it with: abl search SPACE --tracking-uri http://{host}:{port}",
        err=True,
    )
    if host not in LOOPBACK:
        click.echo(
            f"note: {host} is not loopback: anyone who reaches port {port} can read and write runs",
            err=True,
        )
    # The URI goes through MLflow's environment variable: a password stays out of `ps`.
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": uri}
    # MLflow's job runner (GenAI judges, trace rollups; abl uses neither) starts 7 worker
    # processes and delays shutdown by ~30 s; MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true keeps it.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    # Become the MLflow server: signals (Ctrl-C, a supervisor's SIGTERM) reach it directly.
    os.execve(sys.executable, cmd, env)


def check_backend_uri(uri: str) -> str:
    """``uri`` if MLflow can store runs there with the installed drivers; else one AblError line.

    >>> check_backend_uri("postgresql://mlflow@db:5432/mlflow")  # doctest: +SKIP
    'postgresql://mlflow@db:5432/mlflow'
    """
    parts = urlsplit(uri)
    where = "--backend-store-uri"
    if parts.scheme in ("http", "https"):
        raise AblError(f"{where} must be a database, not a tracking server; got '{redact(uri)}'")
    if parts.scheme.split("+")[0] not in SCHEMES:
        raise AblError(f"{where} must be {FORM}; got '{redact(uri)}'")
    if parts.scheme == "sqlite":
        path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else ""
        if not path or not Path(path).parent.is_dir():
            raise AblError(f"{where} must name a SQLite file in an existing directory; got '{uri}'")
        return uri
    if not (parts.hostname or "host=" in parts.query) or not parts.path.strip("/"):
        raise AblError(f"{where} must name a host and a database ({FORM}); got '{redact(uri)}'")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    # SQLAlchemy picks the driver (psycopg from 2.1 on, psycopg2 before, or the one named).
    try:
        dialect = make_url(uri).get_dialect()
    except (ArgumentError, NoSuchModuleError):
        raise AblError(
            f"{where} must name a PostgreSQL driver SQLAlchemy knows (psycopg, psycopg2, ...); "
            f"got '{redact(uri)}'"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise AblError(
            f"a PostgreSQL store needs the {dialect.driver} driver ({exc.name} is not installed): "
            "pip install 'abl[server]'"
        ) from None
    return uri
