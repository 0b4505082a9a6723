"""``abl top RUN``: the best trials of a run, by any metric, optionally per value of a parameter.

abl top quickstart -k 20 --metric predict/mse_regressive --by model.kind
abl top quickstart --format md >> logbook.md
"""

from __future__ import annotations

import json
from typing import Any

import click
import pandas as pd
from rich.markup import escape
from rich.table import Table

from abl.cli import AblContext
from abl.cli._render import fmt as _fmt
from abl.cli._render import terminal

FORMATS = ("table", "md", "csv", "json")


@click.command("top")
@click.argument("run")
@click.option(
    "-k", "k", default=10, show_default=True, type=click.IntRange(min=1), help="Trials (per group)."
)
@click.option("--metric", default=None, help="Metric to rank by [default: the space's].")
@click.option(
    "--mode",
    type=click.Choice(["min", "max"]),
    default=None,
    help="Which way --metric is better, for a metric abl does not know (built-ins declare it).",
)
@click.option("--by", default=None, help="The top k for each value of this parameter.")
@click.option(
    "--format",
    "fmt_name",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table for the terminal; md, csv or json to paste into a logbook or a script.",
)
@click.option(
    "--all", "show_all", is_flag=True, help="Also show metrics that are the same for every trial."
)
@click.pass_obj
def command(
    obj: AblContext,
    run: str,
    k: int,
    metric: str | None,
    mode: str | None,
    by: str | None,
    fmt_name: str,
    show_all: bool,
) -> None:
    """Print the best K completed trials of RUN (a run directory or a sweep name).

    \b
    abl top abl-runs/quickstart/2025-04-21_17-39-20 -k 20
    abl top quickstart --metric predict/mse_regressive --by model.kind
    abl top quickstart --format md
    """
    from abl.results import load_run, split_trials, top_trials
    from abl.rundir import resolve_run

    data = load_run(resolve_run(run, root=obj.root))
    metric = data.check_metric(metric)
    if by is not None:
        data.check_param(by)
    mode = data.mode_of(metric, mode)
    top = top_trials(data.trials, metric, mode, k, by=by)
    split = split_trials(data.trials, metric)
    others = [m for m in data.metrics if m != metric]
    constant = {m: _only_value(split.ok, m) for m in others} if not show_all else {}
    constant = {m: v for m, v in constant.items() if v is not None}
    columns = [
        "rank",
        "trial_id",
        "status",
        *(["seed"] if "seed" in data.trials.columns else []),
        *([by] if by else []),
        *(p for p in data.params if p != by),
        metric,
        *(m for m in others if m not in constant),
    ]
    rows = [{c: _plain(row.get(c)) for c in columns} for _, row in top.iterrows()]
    if fmt_name != "table":
        click.echo(_export(rows, columns, fmt_name), nl=fmt_name != "csv")
        return
    title = f"top {k}{f' per {by}' if by else ''} of {len(split.ok)} by {metric} ({mode})"
    table = Table("#", "trial", *columns[2:], title=title)
    for row in rows:
        table.add_row(*(escape(_fmt(row[c])) for c in columns))
    console = terminal()
    console.print(table)
    if constant:
        same = ", ".join(f"{m}={_fmt(v)}" for m, v in constant.items())
        console.print(f"same for every trial (--all shows them): {same}", soft_wrap=True)
    left = {
        "pruned": len(split.pruned),
        "failed": len(split.failed),
        f"without {metric}": len(split.no_value),
    }
    if any(left.values()):
        console.print("not ranked: " + ", ".join(f"{n} {what}" for what, n in left.items() if n))
    console.print(f"run      {data.run_dir}")


def _plain(value: Any) -> Any:
    """A numpy scalar as a Python one; NaN as None."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and value != value else value


def _only_value(trials: pd.DataFrame, column: str) -> Any:
    """The one value every ranked trial has in ``column``, else None."""
    values = trials[column].dropna().unique() if column in trials else []
    return _plain(values[0]) if len(trials) > 1 and len(values) == 1 else None


def _export(rows: list[dict[str, Any]], columns: list[str], fmt_name: str) -> str:
    """The rows as a Markdown table, CSV, or a JSON list of objects."""
    if fmt_name == "json":
        return json.dumps(rows, indent=2)
    frame = pd.DataFrame(rows, columns=columns)
    if fmt_name == "csv":
        return frame.to_csv(index=False)
    text = frame.map(lambda v: _fmt(v).replace("|", "\\|"))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in text.itertuples(index=False)]
    return "\n".join(lines)
