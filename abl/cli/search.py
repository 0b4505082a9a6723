"""``abl search SPACE [key=value ...]``: run a space on Ray Tune (or ``--dry-run`` it)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from abl.cli import AblContext
from abl.cli._jobs import cluster_address
from abl.cli._render import fmt, terminal, top_table, varying_keys
from abl.search import SweepOptions, count_trials, expand, load_space


@click.command("search")
@click.argument("space")
@click.argument("overrides", nargs=-1)
@click.option(
    "--dry-run", is_flag=True, help="Print the trial count and the first configs; run nothing."
)
@click.option(
    "--show", default=10, show_default=True, help="Configs (dry run) or top trials to print."
)
@click.option(
    "--address",
    default=None,
    callback=cluster_address,
    help="Ray cluster to join ('auto', 'ray://host:10001'); default: a local one.",
)
@click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    default=None,
    help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else sqlite:///ROOT/mlflow.db].",
)
@click.option(
    "--dashboard/--no-dashboard",
    default=True,
    show_default=True,
    help="Start the Ray dashboard (local cluster).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show trial output and Ray's logs.")
@click.pass_obj
def command(
    obj: AblContext,
    space: str,
    overrides: tuple[str, ...],
    dry_run: bool,
    show: int,
    address: str | None,
    tracking_uri: str | None,
    dashboard: bool,
    verbose: bool,
) -> None:
    """Run the ablation grid of SPACE (a YAML file or a built-in space name).

    OVERRIDES use Hydra's syntax: key=value fixes a value, key=a,b,c makes a grid axis.

    \b
    abl search spaces/att_timeseries.yaml model.pe_type=rope,sinpe train.epochs=3
    abl search quickstart --dry-run
    """
    console = terminal()
    loaded = load_space(space, overrides)
    n = count_trials(loaded)
    if dry_run:
        _dry_run(console, loaded, n, show)
        return
    from abl.results.store import read_trials
    from abl.search.sweep import run_sweep

    console.print(
        f"[bold]{loaded.name}[/]: {n} trials of '{loaded.trainable}' "
        f"({loaded.search.algorithm} search), ranked by {loaded.metric} ({loaded.mode})"
    )
    options = SweepOptions(
        root=obj.root,
        address=address,
        tracking_uri=tracking_uri,
        dashboard=dashboard,
        verbose=verbose,
    )
    sweep = run_sweep(loaded, options, console=console)
    trials = read_trials(sweep.run_dir)
    console.print(top_table(trials, loaded, k=show))
    console.print(f"results  {_rel(sweep.run_dir)}  (trials.parquet, history.parquet, space.yaml)")
    if sweep.report is not None:
        console.print(f"report   {_rel(sweep.report)}  (+ report.html, importance.json, plots/)")
    if sweep.report_error:
        console.print(
            f"[yellow]report: {sweep.report_error}; rebuild it with: abl report {_rel(sweep.run_dir)}[/]"
        )
    console.print(
        f"mlflow   {sweep.tracking_uri}  experiment '{loaded.name}'"
        + (f", parent run {sweep.parent_run_id}" if sweep.parent_run_id else "")
    )
    console.print(f"         browse it: abl --root {obj.root} ui")
    if sweep.dashboard_url:
        console.print(f"ray      dashboard was at {sweep.dashboard_url} while the sweep ran")


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _dry_run(console: Console, space, n: int, show: int) -> None:
    from abl.search.load import trainable_of

    spec, _ = trainable_of(space)
    console.print(
        f"[bold]{space.name}[/]: {n} trials of '{space.trainable}' "
        f"({space.search.algorithm} search, repeats {space.repeats}), "
        f"ranked by {space.metric} ({space.mode}); nothing was run"
    )
    configs = expand(space, spec, limit=show)
    keys = varying_keys(space)
    if space.search.algorithm == "tpe":
        console.print("TPE proposes configs as it goes; one per grid cell of the axes below:")
    table = Table("#", *keys)
    for i, cfg in enumerate(configs):
        table.add_row(str(i), *(fmt(cfg.get(k)) for k in keys))
    console.print(table)
    if n > len(configs) and space.search.algorithm != "tpe":
        console.print(f"... and {n - len(configs)} more")
