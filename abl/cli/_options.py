"""Click options shared by the commands that run sweeps (``abl search``, ``abl nightly``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from abl.cli._jobs import cluster_address
from abl.search.dashboard import DEFAULT_HOST, DEFAULT_PORT


def sweep_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--address``, ``--tracking-uri``, ``--dashboard/--no-dashboard``,
    ``--dashboard-port``, ``--dashboard-host`` and ``-v``."""
    options = [
        click.option(
            "--address",
            default=None,
            callback=cluster_address,
            help="Ray cluster to join ('auto', 'ray://host:10001'); default: a local one.",
        ),
        click.option(
            "--tracking-uri",
            envvar="MLFLOW_TRACKING_URI",
            default=None,
            help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else sqlite:///ROOT/mlflow.db].",
        ),
        click.option(
            "--dashboard/--no-dashboard",
            default=True,
            show_default=True,
            help="Start the Ray dashboard (local cluster).",
        ),
        click.option(
            "--dashboard-port",
            type=click.IntRange(1, 65535),
            default=None,
            help=f"The local Ray dashboard's port [default: {DEFAULT_PORT}, or the next free one].",
        ),
        click.option(
            "--dashboard-host",
            default=DEFAULT_HOST,
            show_default=True,
            help="Where the local Ray dashboard listens (0.0.0.0: every interface).",
        ),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            help="Show trial output, Ray's logs and failed trials' tracebacks.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn
