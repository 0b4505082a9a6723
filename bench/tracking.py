"""Figure ``tracking``: what streaming every report to MLflow and Parquet costs a sweep.

    python -m bench --only tracking

The throughput figure's sweep (32 trials of ``att_timeseries`` on a tiny budget, 4 with
``--quick``) runs twice on the same Ray instance: with abl's default sinks (MLflow on SQLite,
Parquet, progress) and with the progress line only, neither building the end-of-sweep report.
They alternate ``PAIRS`` times and the target is on the ratio of their medians.

Then the same split on no-op trials, where nothing hides the sinks' cost: a sweep with no
sink, Parquet only, MLflow only, progress only, and all of them; each sink's cost per trial is the
difference from the sink-less sweep (for information: it says where the time goes).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from bench._env import ensure_ray
from bench._figure import Figure, at_most
from bench.overhead import abl_sweep
from bench.throughput import abl_seconds, space_overrides, tiny_space

REPEATS = 1  # a few minutes a run; --repeats asks for more
PAIRS = 3  # tracked and untracked sweeps, alternating; each side's median is used
NOOP_TRIALS, QUICK_NOOP_TRIALS = 32, 8
TRACKED = ("mlflow", "parquet", "progress")  # abl's default sinks
UNTRACKED = ("progress",)


def noop_breakdown(fig: Figure, root: Path, trials: int) -> None:
    """Per-trial seconds each sink adds to a sweep of ``trials`` no-op trials."""
    abl_sweep(root, 2, sinks=TRACKED)  # creates mlflow.db outside the timings
    bare = abl_sweep(root, trials, sinks=(), report=False)
    parquet = abl_sweep(root, trials, sinks=("parquet",), report=False)
    mlflow = abl_sweep(root, trials, sinks=("mlflow",), report=False)
    progress = abl_sweep(root, trials, sinks=("progress",), report=False)
    tracked = abl_sweep(root, trials, sinks=TRACKED, report=False)
    fig.add("no-op sweep: all sinks / none", tracked / bare)
    fig.add("no-op sweep, no sink, per trial", bare / trials, "s/trial")
    fig.add("no-op sweep: Parquet sink per trial", (parquet - bare) / trials, "s/trial")
    fig.add("no-op sweep: MLflow sink per trial", (mlflow - bare) / trials, "s/trial")
    fig.add("no-op sweep: progress sink per trial", (progress - bare) / trials, "s/trial")
    fig.add("no-op sweep: all sinks per trial", (tracked - bare) / trials, "s/trial")


def run(quick: bool) -> Figure:
    """The att_timeseries sweep with and without MLflow and Parquet; then the no-op split."""
    from abl.space import count_trials

    space = tiny_space(quick)
    n = count_trials(space)
    fig = Figure("tracking", f"{n} trials of {space.name}: with vs without MLflow and Parquet")
    ensure_ray()
    with tempfile.TemporaryDirectory(prefix="abl-bench-tracking-") as tmp:
        root = Path(tmp)
        abl_seconds(tiny_space(True), root)  # creates mlflow.db, starts Ray's workers
        tracked_runs: list[float] = []
        untracked_runs: list[float] = []
        for _ in range(1 if quick else PAIRS):
            tracked_runs.append(abl_seconds(space, root, sinks=TRACKED, report=False))
            untracked_runs.append(abl_seconds(space, root, sinks=UNTRACKED, report=False))
        tracked, untracked = statistics.median(tracked_runs), statistics.median(untracked_runs)
        fig.add("with / without MLflow+Parquet", tracked / untracked, "x", at_most(1.05))
        fig.add("with MLflow+Parquet per trial", tracked / n, "s/trial")
        fig.add("progress line only per trial", untracked / n, "s/trial")
        noop_breakdown(fig, root, QUICK_NOOP_TRIALS if quick else NOOP_TRIALS)
    fig.notes.append(f"overrides: {' '.join(space_overrides(quick))}")
    if not quick:
        fig.notes.append(f"with and without: the median of {PAIRS} sweeps each, alternating")
    fig.notes.append("MLflow writes to SQLite in the sweep's root (abl's default store)")
    fig.notes.append(
        "neither sweep builds the end-of-sweep report, which reads the Parquet files and so "
        "ran on the tracked side only (the throughput figure times it)"
    )
    return fig
