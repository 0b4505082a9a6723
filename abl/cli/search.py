"""``abl search SPACE [key=value ...]``: run a space on Ray Tune (or ``--dry-run`` it)."""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from abl.cli import AblContext
from abl.cli._options import sweep_options
from abl.cli._render import fmt, summary_lines, terminal, top_table, varying_keys
from abl.errors import AblError
from abl.redact import redact
from abl.search import SweepOptions
from abl.search.dashboard import planned_line
from abl.space import count_trials, expand, load_space, trial_range


@click.command("search")
@click.argument("space", required=False)
@click.argument("overrides", nargs=-1)
@click.option(
    "--resume",
    "resume",
    metavar="RUN",
    default=None,
    help="Finish an interrupted sweep: a run directory, or a sweep name (its latest run).",
)
@click.option(
    "--retry-errored",
    is_flag=True,
    help="With --resume: run errored trials again, from their last checkpoint.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=-1),
    default=None,
    help="Retries per trial after a crash (-1: no limit) [default: the space's max_failures].",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the trial count and the first configs; run nothing."
)
@click.option(
    "--show", default=10, show_default=True, help="Configs (dry run) or top trials to print."
)
@sweep_options
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
    dashboard_port: int | None,
    dashboard_host: str,
    verbose: bool,
    resume: str | None,
    retry_errored: bool,
    max_failures: int | None,
) -> None:
    """Run the ablation grid of SPACE (a YAML file or a built-in space name).

    OVERRIDES use Hydra's syntax: key=value fixes a value, key=a,b,c makes a grid axis.

    \b
    abl search spaces/att_timeseries.yaml model.pe_type=rope,sinpe train.epochs=3
    abl search quickstart --dry-run
    abl search --resume quickstart            # finish the latest quickstart sweep
    """
    console = terminal()
    run_dir = _resume_target(obj, space, overrides, resume, retry_errored, dry_run)
    # A sweep builds the models while Ray starts; a dry run builds them here.
    loaded = load_space(
        str(run_dir / "space.yaml") if run_dir else space,  # type: ignore[arg-type]
        overrides,
        models=dry_run,
    )
    n = count_trials(loaded)
    if dry_run:
        _dry_run(console, loaded, n, show)
        line = planned_line(
            dashboard=dashboard, address=address, port=dashboard_port, host=dashboard_host
        )
        if line:
            console.print(line, markup=False, soft_wrap=True)
        return
    from abl.results.store import read_trials
    from abl.search.sweep import resume_sweep, run_sweep

    console.print(
        f"[bold]{loaded.name}[/]: {_trials(loaded)} of '{loaded.trainable}' "
        f"({_how(loaded)}), ranked by {loaded.metric} ({loaded.mode})"
        + (f"; resuming {_rel(run_dir)}" if run_dir else "")
    )
    options = SweepOptions(
        root=obj.root,
        address=address,
        tracking_uri=tracking_uri,
        dashboard=dashboard,
        dashboard_port=dashboard_port,
        dashboard_host=dashboard_host,
        verbose=verbose,
        max_failures=max_failures,
        stop_ray=True,
        freeze_gc=True,
    )
    if run_dir is not None:
        sweep = resume_sweep(run_dir, options, retry_errored=retry_errored, console=console)
    else:
        sweep = run_sweep(loaded, options, console=console)
    if sweep.disk_full:
        # One line, exit 1: Tune saved its state, the sinks kept what they had written, and
        # the trials the full disk failed continue from their checkpoints on --resume.
        console.print(
            f"[red]no space left on device under {obj.root}; free space and resume with: "
            f"abl --root {obj.root} search --resume {_rel(sweep.run_dir)}[/]",
            soft_wrap=True,
        )
        sys.exit(1)
    if sweep.unfinished or sweep.stopped:
        # Interrupted (Ctrl-C, SIGTERM): one more Ctrl-C must not cut these lines short, nor
        # Ray's shutdown at exit.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if sweep.unfinished or loaded.adaptive:
            # Adaptive seeds: trials not started yet are not counted; a resume starts them.
            what = (
                f"{sweep.unfinished} of {n} trials unfinished"
                if not loaded.adaptive
                else f"{sweep.unfinished} started trials unfinished, more seeds may follow"
            )
            console.print(
                f"[yellow]interrupted: {what}; results so far are in {_rel(sweep.run_dir)}[/]"
            )
            console.print(
                f"resume with: abl --root {obj.root} search --resume {_rel(sweep.run_dir)}"
            )
        else:  # every trial had finished when the Ctrl-C came; the report was skipped
            console.print(
                f"[yellow]interrupted: all {n} trials had finished; results are in "
                f"{_rel(sweep.run_dir)}[/]"
            )
            console.print(f"report with: abl --root {obj.root} report {_rel(sweep.run_dir)}")
        _print_mlflow_pending(console, obj, sweep)
        sys.exit(130)
    trials = read_trials(sweep.run_dir)
    console.print(top_table(trials, loaded, k=show))
    console.print(f"results  {_rel(sweep.run_dir)}  (trials.parquet, history.parquet, space.yaml)")
    if sweep.report is not None:
        console.print(f"report   {_rel(sweep.report)}  (+ report.html, importance.json, plots/)")
        summary = json.loads((sweep.report.parent / "importance.json").read_text())
        for line in summary_lines(summary):
            console.print(line, markup=False, soft_wrap=True)
    if sweep.report_error:
        console.print(
            f"[yellow]report: {sweep.report_error}; rebuild it with: abl report {_rel(sweep.run_dir)}[/]"
        )
    console.print(
        f"mlflow   {redact(sweep.tracking_uri)}  experiment '{loaded.name}'"
        + (f", parent run {sweep.parent_run_id}" if sweep.parent_run_id else "")
    )
    console.print(f"         browse it: {browse_hint(obj.root, sweep.tracking_uri)}")
    _print_mlflow_pending(console, obj, sweep)
    _exit_for_errors(console, trials)


def browse_hint(root: Path, tracking_uri: str) -> str:
    """How to open the store the sweep logged to: its URL, or ``abl ui`` over that store."""
    from abl.search.engine import default_tracking_uri

    uri = redact(tracking_uri)
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    if tracking_uri == default_tracking_uri(root):
        return f"abl --root {root} ui"
    return f"abl ui --tracking-uri {shlex.quote(uri)}"


def _exit_for_errors(console: Console, trials: Any) -> None:
    """Exit 1 when a trial errored, with the first error in one line; 0 otherwise."""
    from abl.results.store import TrialStatus

    rows = trials.to_pylist()
    errored = [r for r in rows if r.get("status") == TrialStatus.ERRORED.value]
    if not errored:
        return
    completed = sum(r.get("status") == TrialStatus.COMPLETED.value for r in rows)
    lines = str(errored[0].get("error") or "").strip().splitlines()
    what = (
        "no trial completed" if not completed else f"{len(errored)} of {len(rows)} trials errored"
    )
    console.print(
        f"[red]{what}; the first error (trial {errored[0]['trial_id']}): "
        f"{lines[-1] if lines else 'no message'}[/]",
        soft_wrap=True,
    )
    sys.exit(1)


def _resume_target(
    obj: AblContext,
    space: str | None,
    overrides: tuple[str, ...],
    resume: str | None,
    retry_errored: bool,
    dry_run: bool,
) -> Path | None:
    """The run directory to resume, or None for a new sweep; one-line errors for bad mixes."""
    if resume is None:
        if space is None:
            raise AblError(
                "SPACE is required: a space file or a built-in name (see: abl spaces), or --resume RUN"
            )
        if retry_errored:
            raise AblError("--retry-errored goes with --resume RUN; got it for a new sweep")
        return None
    if space is not None or overrides:
        given = " ".join([space or "", *overrides]).strip()
        raise AblError(
            f"--resume RUN continues a sweep as it was defined (its space.yaml); "
            f"SPACE and overrides are not allowed with it; got '{given}'"
        )
    if dry_run:
        raise AblError("--dry-run shows a new sweep; got it with --resume")
    from abl.rundir import resolve_run

    return resolve_run(resume, root=obj.root).resolve()


def _print_mlflow_pending(console: Console, obj: AblContext, sweep: Any) -> None:
    if sweep.mlflow_pending:
        console.print(
            f"[yellow]mlflow   {sweep.mlflow_pending} trials are not complete in MLflow (the "
            f"tracking store did not answer); send them with: abl --root {obj.root} sync "
            f"{_rel(sweep.run_dir)}[/]"
        )


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _trials(space) -> str:
    """``40 trials``, or with adaptive seeds ``16 to 40 trials``."""
    fewest, most = trial_range(space)
    return f"{most} trials" if fewest == most else f"{fewest} to {most} trials"


def _seeds(space) -> str:
    """Seeds per configuration (or confirmation seeds per arm), in a few words."""
    adaptive = space.adaptive
    if adaptive is None:
        return f"repeats {space.seeds}"
    margin = f", ties within {adaptive.margin:g}" if adaptive.margin is not None else ""
    return (
        f"{adaptive.min} to {adaptive.max} seeds each, more only while a comparison is open "
        f"at alpha {adaptive.alpha:g}{margin}"
    )


def _how(space) -> str:
    """How the space searches, in a few words."""
    if space.tune is None:
        seeds = f", {_seeds(space)}" if space.adaptive is not None else ""
        packed = f", trained fused in packs of up to {space.pack}" if space.pack > 1 else ""
        return f"{space.search.algorithm} search{seeds}{packed}"
    tune = space.tune
    confirm = f"{space.confirm} confirmation seeds"
    if space.adaptive is not None:
        confirm = f"confirmation: {_seeds(space)}"
    return (
        f"tuned ablation: per arm {tune.trials} {tune.algorithm} trials over "
        f"{', '.join(tune.params)}, then {confirm}"
    )


def _dry_run(console: Console, space, n: int, show: int) -> None:
    from abl.space.load import trainable_of

    trainable = trainable_of(space)
    console.print(
        f"[bold]{space.name}[/]: {_trials(space)} of '{space.trainable}' "
        f"({_how(space)}{'' if space.tune or space.adaptive else f', {_seeds(space)}'}), "
        f"ranked by {space.metric} ({space.mode}); nothing was run"
    )
    if space.tune is not None:
        _dry_run_arms(console, space, trainable, show)
        return
    if space.pack > 1:
        from abl.space.variants import packs
        from abl.trainables.pack import PER_MEMBER_KEYS

        differ = f"a pack's trials differ only in {', '.join(sorted(PER_MEMBER_KEYS))}"
        if space.adaptive is not None:
            console.print(
                f"packed: each round's seeds train fused, up to {space.pack} to a Ray trial "
                f"({differ})"
            )
        else:
            sizes = [len(p) for p in packs(expand(space, trainable), space.pack)]
            each = f"{min(sizes)}" if min(sizes) == max(sizes) else f"{min(sizes)} to {max(sizes)}"
            console.print(
                f"packed: {sum(sizes)} trials in {len(sizes)} Ray trials of {each} ({differ})"
            )
    configs = expand(space, trainable, limit=show)
    keys = varying_keys(space)
    if space.search.algorithm == "tpe":
        console.print("TPE proposes configs as it goes; one per grid cell of the axes below:")
    table = Table("#", *keys)
    for i, cfg in enumerate(configs):
        table.add_row(str(i), *(fmt(cfg.get(k)) for k in keys))
    console.print(table)
    if n > len(configs) and space.search.algorithm != "tpe":
        console.print(f"... and {n - len(configs)} more")


def _dry_run_arms(console: Console, space, trainable, show: int) -> None:
    from abl.space.schema import arm_keys
    from abl.space.variants import arm_configs

    arms = arm_configs(space, trainable.resolve({}, space.source))
    keys = arm_keys(space)
    console.print(f"{len(arms)} arms; the nuisance parameters are tuned within each:")
    table = Table("arm", *keys)
    for i, arm in enumerate(arms[:show]):
        table.add_row(str(i), *(fmt(arm.get(k)) for k in keys))
    console.print(table)
    if len(arms) > show:
        console.print(f"... and {len(arms) - show} more")
