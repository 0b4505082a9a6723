"""``abl nightly CONFIG``: run the nightly spaces, compare with the last nightly, alert by exit code.

abl nightly cluster/nightly.yaml

Exit status: 0 when no rule fired, 1 when any rule fired (or a sweep failed), 2 for a bad
config, space or override (one line on stderr), so cron or a CI job can alert on non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from abl.cli import AblContext
from abl.cli._options import sweep_options
from abl.cli._render import terminal
from abl.redact import redact
from abl.search import SweepOptions
from abl.search.nightly import PlannedSpace, load_nightly, plan_nightly
from abl.space import count_trials


@click.command("nightly")
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--dry-run", is_flag=True, help="Print the spaces, trial counts and baselines; run nothing."
)
@sweep_options
@click.pass_obj
def command(
    obj: AblContext,
    config: Path,
    dry_run: bool,
    address: str | None,
    tracking_uri: str | None,
    dashboard: bool,
    dashboard_port: int | None,
    dashboard_host: str,
    verbose: bool,
) -> None:
    """Run the spaces of CONFIG, compare each with its previous nightly, write a digest.

    Exits 0 when no rule fired, 1 when one did (the digest names it), 2 for bad input.

    \b
    abl nightly cluster/nightly.yaml
    abl nightly cluster/nightly.yaml --dry-run
    """
    console = terminal()
    nightly = load_nightly(config)
    planned = plan_nightly(nightly, obj.root)
    if dry_run:
        _dry_run(console, planned)
        return
    from abl.search.nightly import run_nightly

    options = SweepOptions(
        root=obj.root,
        address=address,
        tracking_uri=tracking_uri,
        dashboard=dashboard,
        dashboard_port=dashboard_port,
        dashboard_host=dashboard_host,
        verbose=verbose,
    )
    result = run_nightly(nightly, planned, options, console=console)
    for digest in result.digests:
        verdict = "[red]FIRED[/]" if digest.fired else "[green]ok[/]"
        where = f"  {digest.run_dir}" if digest.run_dir else ""
        console.print(f"{verdict}  {escape(digest.name)}{where}")
        for finding in digest.findings:
            console.print(f"       {finding.rule.value}: {escape(finding.message)}")
    console.print(f"digest   {result.paths.markdown}  (+ digest.html, digest.json)")
    if result.mlflow_run_id:
        console.print(
            f"mlflow   {redact(result.tracking_uri)}  experiment '{nightly.name}', run {result.mlflow_run_id}"
        )
    if result.mlflow_error:
        console.print(f"[yellow]{escape(result.mlflow_error)}[/]")
    if result.fired:
        sys.exit(1)


def _dry_run(console: Console, planned: list[PlannedSpace]) -> None:
    for plan in planned:
        space, rules = plan.space, plan.rules
        console.print(
            f"[bold]{escape(space.name)}[/]: {count_trials(space)} trials of '{space.trainable}' "
            f"from {escape(plan.entry.space)} {escape(' '.join(plan.entry.overrides))}".rstrip()
        )
        console.print(
            f"  previous nightly: {plan.previous or 'none (this run becomes the baseline)'}"
        )
        shown = rules.model_dump(exclude_defaults=False)
        console.print("  rules: " + escape(", ".join(f"{k}={v}" for k, v in shown.items())))
    console.print("nothing was run (--dry-run)")
