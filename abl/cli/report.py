"""``abl report RUN``: rebuild a run's report.md, report.html, importance.json and plots/.

abl report quickstart --by model.kind --pair model.pe_type,model.is_causal
"""

from __future__ import annotations

import json

import click

from abl.cli import AblContext
from abl.cli._render import terminal


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
    from abl.results import build_report, resolve_run

    run_dir = resolve_run(run, root=obj.root)
    paths = build_report(run_dir, metric=metric, mode=mode, by=by, pairs=pairs, k=k)
    console = terminal()
    console.print(f"report   {paths.markdown}")
    console.print(
        f"         {paths.html.name} (self-contained), {paths.importance.name}, "
        f"{len(paths.plots)} plots in {paths.plots[0].parent.relative_to(run_dir) if paths.plots else 'plots'}/"
    )
    summary = json.loads(paths.importance.read_text())
    for group, results in summary["groups"].items():
        for result in results[:2]:
            top = ", ".join(
                f"{p} {100 * (s or 0):.0f}%" for p, s in list(result["scores"].items())[:3]
            )
            where = "" if group == "all" else f" [{group}]"
            console.print(f"{result['method']:>9}{where}: {top}", markup=False)
    for group, reason in summary["skipped"].items():
        console.print(
            f"importance{'' if group == 'all' else f' [{group}]'}: nothing to decompose ({reason})"
        )
    tuned = summary.get("tuned")
    if tuned and tuned["arms"]:
        changed = {True: "changed", False: "did not change", None: "unknown"}
        console.print(
            f"    tuned: {tuned['arms'][0]['name']} ranks first; tuning per arm "
            f"{changed[tuned['conclusion_changed']]} the conclusion",
            markup=False,
        )
