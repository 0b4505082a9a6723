"""Figure ``overhead``: what one trial costs when its training costs nothing.

    python -m bench --only overhead

64 trials (8 with ``--quick``) of :func:`bench.noop.trainable`, which only reports 10 times,
run three ways on the same 2-CPU Ray instance, one trial per CPU:

- abl: ``spaces/noop.yaml`` (``trainable: bench.noop:trainable``) through ``run_sweep`` with
  every sink (MLflow on SQLite, Parquet, progress);
- raw Ray Tune with its defaults (a new actor per trial);
- raw Ray Tune with ``reuse_actors=True`` (what abl's ``build_tuner`` sets).

Per-trial overhead is the sweep's wall time over its trial count. A 2-trial sweep of each
kind runs first so that imports, ``mlflow.db``'s creation and Ray's worker pool are not
charged to whichever runs first; the first abl sweep's time is reported on its own. abl and
Tune with ``reuse_actors`` then alternate ``PAIRS`` times, and each side's median is used.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench._env import (
    LOGGERS_OFF,
    NOOP_SPACE,
    Stopwatch,
    ensure_ray,
    quiet_console,
    without_env,
)
from bench._figure import Figure, at_most
from bench.noop import trainable

TRIALS, QUICK_TRIALS = 64, 8
PAIRS = 5  # abl and Tune(reuse_actors=True) sweeps per repeat, alternating


def abl_sweep(
    root: Path, trials: int, *, sinks: tuple[str, ...] | None = None, report: bool = True
) -> float:
    """Seconds of ``run_sweep`` over ``trials`` no-op trials (every sink unless ``sinks``; the
    end-of-sweep report unless ``report`` is False)."""
    from abl.search import SweepOptions, run_sweep
    from abl.space import load_space

    space = load_space(str(NOOP_SPACE), [f"repeats={trials}"])
    kwargs: dict[str, Any] = {} if sinks is None else {"sinks": sinks}
    options = SweepOptions(root=root, dashboard=False, report=report, **kwargs)
    with Stopwatch() as sw:
        sweep = run_sweep(space, options, console=quiet_console())
    if sweep.errors or sweep.trials != trials:
        raise RuntimeError(f"abl no-op sweep: {sweep.trials}/{trials} trials, {sweep.errors}")
    return sw.seconds


def tune_sweep(root: Path, trials: int, *, reuse_actors: bool) -> float:
    """Seconds of a raw ``tune.Tuner(...).fit()`` over ``trials`` no-op trials.

    Tune runs as a hand-written script gets it: with its default loggers (CSV, JSON and
    TensorBoard), which abl's ``init_ray`` turns off in this process's environment.
    """
    from ray import tune

    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(num_samples=trials, reuse_actors=reuse_actors),
        run_config=tune.RunConfig(storage_path=str(root / "tune"), verbose=0),
    )
    with without_env(LOGGERS_OFF), Stopwatch() as sw:
        grid = tuner.fit()
    if grid.errors or len(grid) != trials:
        raise RuntimeError(f"raw Tune no-op sweep: {len(grid)}/{trials} trials, {grid.errors}")
    return sw.seconds


def statuses_of_last_sweep(root: Path) -> set[str]:
    """The trial statuses abl recorded in its newest no-op run directory."""
    from abl.results import read_trials
    from abl.rundir import latest_run

    run_dir = latest_run(root, "bench_noop")
    return set(read_trials(run_dir).column("status").to_pylist()) if run_dir else set()


def run(quick: bool) -> Figure:
    """Per-trial seconds of abl, raw Tune and Tune with ``reuse_actors``; abl's ratios.

    abl and Tune with ``reuse_actors`` run ``PAIRS`` times each, alternating, and each side's
    median is taken: a sweep of 64 no-op trials lasts a few seconds, so one slow moment of
    this shared box would otherwise decide the ratio.
    """
    n = QUICK_TRIALS if quick else TRIALS
    pairs = 1 if quick else PAIRS
    fig = Figure("overhead", f"per-trial overhead: {n} no-op trials (10 reports each), 2 CPUs")
    ensure_ray()
    abl_runs: list[float] = []
    reuse_runs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="abl-bench-overhead-") as tmp:
        root = Path(tmp)
        first = abl_sweep(root, 2)
        statuses = statuses_of_last_sweep(root)
        tune_sweep(root, 2, reuse_actors=True)
        for _ in range(pairs):
            abl_runs.append(abl_sweep(root, n))
            reuse_runs.append(tune_sweep(root, n, reuse_actors=True))
        default_s = tune_sweep(root, n, reuse_actors=False)
    abl_s, reuse_s = statistics.median(abl_runs), statistics.median(reuse_runs)
    fig.add("abl per trial", abl_s / n, "s/trial", at_most(0.2))
    fig.add("abl / Tune(reuse_actors=True)", abl_s / reuse_s, "x", at_most(1.3))
    fig.add("abl / Tune(defaults)", abl_s / default_s)
    fig.add("Tune(defaults) per trial", default_s / n, "s/trial")
    fig.add("Tune(reuse_actors=True) per trial", reuse_s / n, "s/trial")
    fig.add("abl first sweep of 2 trials (creates mlflow.db)", first, "s")
    fig.notes.append("raw Tune runs with verbose=0, as abl does: no status table is printed")
    if pairs > 1:
        fig.notes.append(
            f"abl and Tune(reuse_actors=True): the median of {pairs} sweeps each, alternating"
        )
    fig.notes.append(
        "raw Tune keeps its default CSV, JSON and TensorBoard loggers; abl keeps the JSON one "
        "(MLflow and Parquet hold the rest)"
    )
    if statuses != {"completed"}:
        fig.notes.append(
            f"engine bug: the no-op trials ended normally but abl recorded them as "
            f"{', '.join(sorted(statuses))}; a custom function trainable that never reports "
            f"trial/status is taken for a pruned one (SinkCallback.on_trial_complete)"
        )
    return fig
