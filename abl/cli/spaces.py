"""``abl spaces``: the built-in space files with their trial counts."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click
from rich.table import Table

from abl.cli._render import terminal
from abl.errors import AblError
from abl.space import count_trials, load_space
from abl.space.schema import builtin_spaces_dir


@click.command("spaces")
def command() -> None:
    """List the built-in spaces: run one with `abl search NAME`."""
    table = Table("space", "trainable", "search", "trials", "description")
    for path in sorted(builtin_spaces_dir().glob("*.yaml")):
        try:
            space = load_space(str(path))
        except AblError as exc:
            table.add_row(path.stem, "", "", "invalid", str(exc))
            continue
        table.add_row(
            path.stem,
            space.trainable,
            space.search.algorithm if space.tune is None else f"tuned ({space.tune.algorithm})",
            str(count_trials(space)),
            space.description,
        )
    console = terminal()
    console.print(table)
    where = str(builtin_spaces_dir())
    with contextlib.suppress(ValueError):  # under the working directory: say it short
        where = f"./{builtin_spaces_dir().relative_to(Path.cwd())}"
    console.print(f"from {where}")
