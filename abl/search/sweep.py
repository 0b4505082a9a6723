"""Run a whole sweep: run directory, sinks, Ray, the Tuner, and what to print at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from abl.search.engine import (
    Sweep,
    SweepOptions,
    build_tuner,
    default_tracking_uri,
    init_ray,
    new_run_dir,
    trial_config,
)
from abl.search.space import MARK_KEYS, Space
from abl.search.variants import count_trials

SPACE_FILE = "space.yaml"


def make_sinks(names: tuple[str, ...], *, tracking_uri: str, console: Any = None) -> list[Any]:
    """The sinks a sweep streams to, MLflow first so its run ids reach the Parquet rows."""
    from abl.search.sinks import MLflowSink, ParquetSink, ProgressSink

    sinks: list[Any] = []
    if "mlflow" in names:
        sinks.append(MLflowSink(tracking_uri=tracking_uri))
    if "parquet" in names:
        sinks.append(ParquetSink())
    if "progress" in names:
        sinks.append(ProgressSink(console=console))
    return sinks


def run_sweep(space: Space, options: SweepOptions, *, console: Any = None) -> Sweep:
    """Run every trial of ``space`` on Ray and stream results to the sinks; returns where they went.

    >>> from abl.search import load_space  # doctest: +SKIP
    >>> run_sweep(load_space("quickstart"), SweepOptions())  # doctest: +SKIP
    """
    from abl.search.load import trainable_of
    from abl.search.sinks import SinkCallback, SweepInfo

    run_dir = new_run_dir(options.root, space.name)
    space_file = run_dir / SPACE_FILE
    space_file.write_text(space.to_yaml(), encoding="utf-8")
    tracking_uri = options.tracking_uri or default_tracking_uri(options.root)
    dashboard_url = init_ray(options)
    spec, _ = trainable_of(space)

    def full_config(config: dict[str, Any]) -> dict[str, Any]:
        marks = {k: config[k] for k in MARK_KEYS if k in config}  # tuned ablations
        config = trial_config(config, spec)
        return {**(spec.resolve(config, "trial config") if spec is not None else config), **marks}

    sweep = SweepInfo(
        name=space.name,
        run_dir=run_dir,
        metric=space.metric,
        mode=space.mode,
        space_file=space_file,
        total_trials=count_trials(space),
        tracking_uri=tracking_uri,
    )
    sinks = make_sinks(options.sinks, tracking_uri=tracking_uri, console=console)
    callback = SinkCallback(
        sinks, sweep, config_of=full_config, pruning=space.scheduler.asha is not None
    )
    tuner = build_tuner(space, run_dir, [callback])
    grid = tuner.fit()
    errors = [str(r.error).splitlines()[0] for r in grid if r.error is not None]
    parent = next((s.parent_run_id for s in sinks if hasattr(s, "parent_run_id")), None)
    sweep_result = Sweep(
        run_dir=run_dir,
        tracking_uri=tracking_uri,
        parent_run_id=parent,
        dashboard_url=dashboard_url,
        trials=len(grid),
        errors=errors,
    )
    if options.report:
        sweep_result.report, sweep_result.report_error = publish_report(
            run_dir, tracking_uri, parent
        )
    return sweep_result


def publish_report(
    run_dir: Path, tracking_uri: str, parent_run_id: str | None
) -> tuple[Path | None, str | None]:
    """Build the report from the run's Parquet files and attach it to the MLflow parent run.

    Returns ``(report.md, None)``, or ``(None, why)``: a report that fails must not hide
    the sweep's results, which are all in the Parquet files (``abl report RUN`` retries).
    """
    from abl.results import build_report

    try:
        paths = build_report(run_dir)
    except Exception as exc:  # reported to the user; results stay on disk
        return None, f"{type(exc).__name__}: {exc}"
    if parent_run_id:
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri)
            for path in (paths.markdown, paths.html, paths.importance):
                client.log_artifact(parent_run_id, str(path), "report")
            for path in paths.plots:
                client.log_artifact(parent_run_id, str(path), "report/plots")
        except Exception as exc:  # the tracking store may be down
            return paths.markdown, f"report not attached to MLflow ({type(exc).__name__}: {exc})"
    return paths.markdown, None


def latest_run(root: Path, name: str) -> Path | None:
    """The newest run directory of sweep ``name`` under ``root``."""
    base = root / name
    runs = sorted(p for p in base.iterdir() if (p / SPACE_FILE).exists()) if base.is_dir() else []
    return runs[-1] if runs else None
