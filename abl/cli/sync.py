"""``abl sync RUN``: send MLflow what a sweep could not log while the tracking store was down.

abl sync quickstart
"""

from __future__ import annotations

import click

from abl.cli import AblContext
from abl.cli._render import terminal
from abl.errors import AblError, error_line
from abl.redact import is_redacted, redact


@click.command("sync")
@click.argument("run")
@click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    default=None,
    help="MLflow tracking URI [default: the one the sweep used (its mlflow.json), "
    "else $MLFLOW_TRACKING_URI, else sqlite:///ROOT/mlflow.db].",
)
@click.pass_obj
def command(obj: AblContext, run: str, tracking_uri: str | None) -> None:
    """Push to MLflow exactly what it lacks of RUN's Parquet stores (running it twice adds nothing).

    RUN is a run directory, or a sweep name: then its latest run under --root. Missing child
    runs are created with their params, missing metric steps are logged, and finished trials
    get their final status.
    """
    from abl.results import load_run
    from abl.results.store import read_history, read_trials
    from abl.rundir import resolve_run
    from abl.search.engine import default_tracking_uri
    from abl.search.sinks import SweepInfo
    from abl.search.sinks.mlflow import sync_run

    run_dir = resolve_run(run, root=obj.root).resolve()
    data = load_run(run_dir)
    saved = (data.mlflow or {}).get("tracking_uri")
    if saved and is_redacted(saved):  # its password was not stored: take the one given now
        if not tracking_uri or redact(tracking_uri) != saved:
            raise AblError(
                f"{run_dir.name} logged to {saved}; give that URI with its password "
                f"(--tracking-uri or $MLFLOW_TRACKING_URI); got {redact(tracking_uri or 'none')}"
            )
        saved = tracking_uri
    uri = saved or tracking_uri or default_tracking_uri(obj.root)
    sweep = SweepInfo(
        name=data.space.name,
        run_dir=run_dir,
        metric=data.space.metric,
        mode=data.space.mode,
        space_file=run_dir / "space.yaml",
        total_trials=len(data.trials),
        tracking_uri=uri,
    )
    trials = read_trials(run_dir).to_pylist()
    history = read_history(run_dir).to_pylist()
    try:
        report = sync_run(sweep, trials, history)
    except Exception as exc:  # the store is unreachable or refused: nothing else to do here
        raise AblError(
            f"cannot sync {run_dir} to MLflow at {redact(uri)}: {error_line(exc)}"
        ) from exc
    console = terminal()
    if not report.changed:
        console.print(
            f"mlflow   {redact(uri)} already has all {report.trials} trials of {run_dir.name}"
        )
    else:
        console.print(
            f"mlflow   {redact(uri)}: "
            + ("created the parent run, " if report.parent_created else "")
            + f"{report.runs_created} child runs created, {report.values_sent} metric values "
            f"sent, {report.runs_terminated} runs given their final status ({report.trials} "
            "trials)"
        )
    if report.run_ids_filled:
        console.print(
            f"parquet  {report.run_ids_filled} trials rows given their MLflow run id "
            f"({run_dir.name}/trials.parquet)"
        )
