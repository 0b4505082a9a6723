"""Click options shared by the commands that run sweeps (``abl search``, ``abl nightly``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from abl.cli._jobs import cluster_address


def sweep_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--address``, ``--tracking-uri``, ``--dashboard/--no-dashboard`` and ``-v``."""
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
            "-v",
            "--verbose",
            is_flag=True,
            help="Show trial output, Ray's logs and failed trials' tracebacks.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn
