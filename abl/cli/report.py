"""``abl report RUN``: rebuild a run's report.md, report.html, importance.json and plots/.

abl report quickstart --by model.kind --pair model.pe_type,model.is_causal
"""

from __future__ import annotations

import json

import click

from abl.cli import AblContext
from abl.cli._render import summary_lines, terminal


@click.command("report")
@click.argument("run")
@click.option(
    "--metric",
    default=None,
    help="Metric to rank and analyse [default: the space's]; another metric's report goes "
    "beside the space's (report.<metric>.md, importance.<metric>.json, plots/<metric>/).",
)
@click.option(
    "--mode",
    type=click.Choice(["min", "max"]),
    default=None,
    help="Which way --metric is better, for a metric abl does not know (built-ins declare it).",
)
@click.option("--by", default=None, help="Compute importance within each value of this parameter.")
@click.option(
    "--pair",
    "pairs",
    multiple=True,
    metavar="A,B",
    help="Add a heatmap of two parameters (repeatable).",
)
@click.option(
    "-k", "k", default=10, show_default=True, type=click.IntRange(min=1), help="Top trials."
)
@click.pass_obj
def command(
    obj: AblContext,
    run: str,
    metric: str | None,
    mode: str | None,
    by: str | None,
    pairs: tuple[str, ...],
    k: int,
) -> None:
    """(Re)build the report of RUN from its Parquet files (no Ray, no MLflow needed).

    RUN is a run directory, or a sweep name: then its latest run under --root.

    \b
    abl report abl-runs/quickstart/2025-04-21_17-39-20
    abl report quickstart --metric predict/mse_regressive --by model.kind
    """
    from abl.results import build_report
    from abl.rundir import resolve_run

    run_dir = resolve_run(run, root=obj.root)
    paths = build_report(run_dir, metric=metric, mode=mode, by=by, pairs=pairs, k=k)
    console = terminal()
    console.print(f"report   {paths.markdown}")
    console.print(
        f"         {paths.html.name} (self-contained), {paths.importance.name}, "
        f"{len(paths.plots)} plots in {paths.plots[0].parent.relative_to(run_dir) if paths.plots else 'plots'}/"
    )
    for line in summary_lines(json.loads(paths.importance.read_text())):
        console.print(line, markup=False, soft_wrap=True)
