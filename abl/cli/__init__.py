"""The ``abl`` command: a click group with one module per command.

abl search spaces/quickstart.yaml
"""

from __future__ import annotations

import atexit
import gc
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from abl import __version__
from abl.errors import AblError, AblWarning


@dataclass
class AblContext:
    """State shared by every command (click's ``ctx.obj``)."""

    root: Path  # results root: run directories and the default MLflow store live here


class AblGroup(click.Group):
    """Prints an AblError as one line on stderr and exits 2: a user's mistake is no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AblError as exc:
            click.echo(f"abl: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=AblGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="abl")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default="abl-runs",
    envvar="ABL_ROOT",
    show_default=True,
    help="Results root: run directories and the default MLflow store (env ABL_ROOT).",
)
@click.pass_context
def main(ctx: click.Context, root: Path) -> None:
    """abl: architecture ablations of small PyTorch models as Ray Tune sweeps."""
    ctx.obj = AblContext(root=root)
    warnings.showwarning = _show_warning
    global _exit_registered
    if not _exit_registered:  # first registered, so it runs after Ray's and MLflow's
        atexit.register(gc.freeze)
        _exit_registered = True


# Python collects every object once more as it exits: with torch, Ray, MLflow and pandas
# loaded that took 2 s after a sweep's last line. Everything abl writes is closed by then,
# so the objects left are frozen out of that collection (the OS frees the memory).
_exit_registered = False


_python_showwarning = warnings.showwarning


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """abl's own warnings as one line (Python's form adds the file, line and source line)."""
    if issubclass(category, AblWarning):
        click.echo(f"abl: warning: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def _register() -> None:
    from abl.cli import (
        compare,
        jobs,
        logs,
        nightly,
        report,
        search,
        server,
        spaces,
        stop,
        submit,
        sync,
        top,
        trainables,
        ui,
    )

    modules = (search, spaces, trainables, ui, server, report, top, compare, sync, nightly)
    for module in (*modules, submit, jobs, logs, stop):
        main.add_command(module.command)


_register()
