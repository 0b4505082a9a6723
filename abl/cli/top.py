"""``abl top RUN``: the best trials of a run, by any metric, optionally per value of a parameter.

abl top quickstart -k 20 --metric predict/mse_regressive --by model.kind
"""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from abl.cli import AblContext
from abl.cli._render import fmt as _fmt
from abl.cli._render import terminal


@click.command("top")
@click.argument("run")
@click.option(
    "-k", "k", default=10, show_default=True, type=click.IntRange(min=1), help="Trials (per group)."
)
@click.option("--metric", default=None, help="Metric to rank by [default: the space's].")
@click.option("--by", default=None, help="The top k for each value of this parameter.")
@click.pass_obj
def command(obj: AblContext, run: str, k: int, metric: str | None, by: str | None) -> None:
    """Print the best K completed trials of RUN (a run directory or a sweep name).

    \b
    abl top abl-runs/quickstart/2025-04-21_17-39-20 -k 20
    abl top quickstart --metric predict/mse_regressive --by model.kind
    """
    from abl.results import load_run, resolve_run, split_trials, top_trials

    data = load_run(resolve_run(run, root=obj.root))
    metric = data.check_metric(metric)
    if by is not None:
        data.check_param(by)
    mode = data.mode_of(metric)
    top = top_trials(data.trials, metric, mode, k, by=by)
    split = split_trials(data.trials, metric)
    params = [p for p in data.params if p != by]
    metrics = [metric, *(m for m in data.metrics if m != metric)]
    title = f"top {k}{f' per {by}' if by else ''} of {len(split.ok)} by {metric} ({mode})"
    table = Table("#", "trial", *([by] if by else []), *params, *metrics, title=title)
    for _, row in top.iterrows():
        cells = [str(row["rank"]), str(row["trial_id"]), *([fmt(row[by])] if by else [])]
        table.add_row(*cells, *(fmt(row.get(c)) for c in params + metrics))
    console = terminal()
    console.print(table)
    left = {
        "pruned": len(split.pruned),
        "failed": len(split.failed),
        f"without {metric}": len(split.no_value),
    }
    if any(left.values()):
        console.print("not ranked: " + ", ".join(f"{n} {what}" for what, n in left.items() if n))
    console.print(f"run      {data.run_dir}")


def fmt(value: object) -> str:
    """A value as text, rich markup escaped (a grid list prints as "['a', 'b']")."""
    return escape(_fmt(value.item() if hasattr(value, "item") else value))
