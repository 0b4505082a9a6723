"""``abl compare RUN_A RUN_B``: what changed between two runs, and what it did to the results.

abl compare abl-runs/quickstart/2025-04-21_17-39-20 quickstart
"""

from __future__ import annotations

import math
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from abl.cli import AblContext
from abl.cli._render import fmt as _fmt
from abl.cli._render import terminal


@click.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--metric", default=None, help="Metric to rank by [default: RUN_A's space's].")
@click.option(
    "-k", "k", default=5, show_default=True, type=click.IntRange(min=1), help="Top trials of each."
)
@click.pass_obj
def command(obj: AblContext, run_a: str, run_b: str, metric: str | None, k: int) -> None:
    """Compare two runs (run directories or sweep names): space diff, best metrics, top configs.

    \b
    abl compare abl-runs/quickstart/2025-04-21_17-39-20 abl-runs/quickstart/2025-04-22_09-00-00
    """
    from abl.results import compare_runs
    from abl.rundir import resolve_run

    c = compare_runs(
        resolve_run(run_a, root=obj.root), resolve_run(run_b, root=obj.root), metric=metric, k=k
    )
    console = terminal()
    console.print(f"A  {c.a.run_dir}  ({len(c.a.trials)} trials)")
    console.print(f"B  {c.b.run_dir}  ({len(c.b.trials)} trials)")
    _space(console, c)
    status = Table("status", "A", "B", title="trials")
    for name, row in c.status.iterrows():
        status.add_row(str(name), str(row["A"]), str(row["B"]))
    console.print(status)
    best = Table("metric", "mode", "best A", "best B", "B - A", title="best value of every metric")
    for _, row in c.best.iterrows():
        best.add_row(
            row["metric"], row["mode"], _num(row["A"]), _num(row["B"]), _num(row["change"])
        )
    console.print(best)
    console.print(_tops(c, k))


def _space(console: Console, c: Any) -> None:
    if c.same_space:
        console.print("space: identical")
        return
    diff = Table("space key", "A", "B", title="space: what changed")
    for key, a, b in c.space_diff:
        diff.add_row(key, fmt(a), fmt(b))
    console.print(diff)


def _num(value: float) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.6g}"


def _tops(c: Any, k: int) -> Table:
    table = Table(
        "#",
        "A: config",
        f"A {c.metric}",
        "B: config",
        f"B {c.metric}",
        title=f"top {k} by {c.metric} ({c.mode})",
    )
    rows_a, rows_b = list(c.top_a.iterrows()), list(c.top_b.iterrows())
    for i in range(max(len(rows_a), len(rows_b))):
        cells = [str(i + 1)]
        for rows, run in ((rows_a, c.a), (rows_b, c.b)):
            row = rows[i][1] if i < len(rows) else None
            cells += (
                [_config(row, run.params), _num(row[c.metric])] if row is not None else ["", ""]
            )
        table.add_row(*cells)
    return table


def _config(row: Any, params: list[str]) -> str:
    return " ".join(f"{p}={fmt(row[p])}" for p in params)


def fmt(value: object) -> str:
    """A value as text, rich markup escaped (a grid list prints as "['a', 'b']")."""
    return escape(_fmt(value.item() if hasattr(value, "item") else value))
