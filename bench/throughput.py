"""Figure ``throughput``: a sweep on abl against the same configs in a sequential loop.

    python -m bench --only throughput

32 trials (4 with ``--quick``) of ``spaces/att_timeseries.yaml`` on a tiny budget, three ways:

- abl: ``run_sweep`` with every sink, 2 concurrent trials of 1 CPU (1 torch thread) each;
- a sequential in-process loop over the same configs calling
  :func:`abl.trainables.loop.train`, as Hydra's basic launcher runs ``--multirun`` jobs, with
  torch's default thread count (one thread per core);
- the same loop with ``torch.set_num_threads(1)``;
- for information, the configs on a pool of 2 fresh 1-thread processes without Ray: what
  the cores give at best, so a miss can be told apart from a machine that does not scale;
- for information, where abl's time goes between the pool and abl: the same trials on raw
  Ray Tune (a function trainable calling the same ``train``, 1 CPU and 1 thread each,
  ``reuse_actors=True``, no sinks), abl with the Parquet store only and no report, and the
  CPU seconds abl's driver (this process) spends during its sweep beside the trials.

The loops do the same work per trial as abl's (same epochs, checkpoint saves, final metrics):
only the way trials are scheduled differs. Figures are loop seconds over abl seconds.
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench._env import (
    LOGGERS_OFF,
    Stopwatch,
    concurrency,
    device,
    ensure_ray,
    gpu_fraction,
    ignore_report,
    quiet_console,
    sweep_overrides,
    torch_threads,
    without_env,
)
from bench._figure import Figure, at_least

REPEATS = 1  # a few minutes a run; --repeats asks for more
SPACE = "att_timeseries"
# Fixing three of the six grid axes leaves 4 PE types x 2 causal x 2 lr x 2 kln = 32 trials.
FULL = ("model.is_inln=false", "model.is_qln=false", "train.lr=1e-3,3e-4")
QUICK = (*FULL[:2], "train.lr=1e-3", "model.is_kln=false", "model.is_causal=true")
BUDGET = ("train.epochs=2", "data.length=2000")
QUICK_BUDGET = ("train.epochs=1", "data.length=600")


def tiny_space(quick: bool, extra: tuple[str, ...] = ()) -> Any:
    """The att_timeseries space cut to 32 trials (4 if ``quick``) on a tiny training budget."""
    from abl.space import load_space

    return load_space(SPACE, [*space_overrides(quick), *sweep_overrides(), *extra])


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User and system CPU seconds of this process (every thread), or of its waited-for
    children with ``resource.RUSAGE_CHILDREN``."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def abl_seconds(
    space: Any, root: Path, *, sinks: tuple[str, ...] | None = None, report: bool = True
) -> float:
    """Wall seconds of ``run_sweep(space)`` (every sink unless ``sinks`` is given; the
    end-of-sweep report unless ``report`` is False)."""
    return abl_seconds_and_cpu(space, root, sinks=sinks, report=report)[0]


def abl_seconds_and_cpu(
    space: Any, root: Path, *, sinks: tuple[str, ...] | None = None, report: bool = True
) -> tuple[float, float]:
    """:func:`abl_seconds` and the CPU seconds of the driver (this process) meanwhile: Tune's
    event loop, the sinks, the report and Ray's core worker threads, not the trials."""
    from abl.search import SweepOptions, run_sweep
    from abl.space import count_trials

    kwargs: dict[str, Any] = {} if sinks is None else {"sinks": sinks}
    # freeze_gc as the CLI sets it (this process is the driver, as `abl search`'s is)
    options = SweepOptions(root=root, dashboard=False, report=report, freeze_gc=True, **kwargs)
    cpu = cpu_seconds()
    with Stopwatch() as sw:
        sweep = run_sweep(space, options, console=quiet_console())
    cpu = cpu_seconds() - cpu
    if sweep.errors or sweep.trials != count_trials(space):
        raise RuntimeError(f"abl sweep of {space.name}: {sweep.trials} trials, {sweep.errors}")
    return sw.seconds, cpu


def loop_seconds(space: Any, threads: int | None) -> float:
    """Wall seconds of training every config of ``space`` one after another in this process."""
    from abl.space import expand
    from abl.space.load import trainable_of
    from abl.trainables.loop import train

    spec = trainable_of(space)
    configs = expand(space, spec)
    with torch_threads(threads), Stopwatch() as sw:
        for config in configs:
            train(config, trainable=spec, report=ignore_report, device=device())
    return sw.seconds


def _pool_init() -> None:
    import torch

    torch.set_num_threads(1)


def _pool_train(config: dict[str, Any], trainable: str, where: str) -> None:
    from abl.trainables.loop import train
    from abl.trainables.spec import TRAINABLES

    train(config, trainable=TRAINABLES.get(trainable), report=ignore_report, device=where)


def pool_seconds_and_cpu(space: Any, workers: int = 2) -> tuple[float, float]:
    """Wall seconds of the configs on ``workers`` fresh 1-thread processes, no Ray (the
    ceiling), and the CPU seconds those processes spent.

    What a plain process-pool launcher (Hydra's joblib launcher, say) would get from the
    machine: if this is far from ``workers`` x the 1-thread loop, the cores do not scale.
    """
    from abl.space import expand
    from abl.space.load import trainable_of

    spec = trainable_of(space)
    configs = expand(space, spec)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_pool_init)
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    with Stopwatch() as sw, pool:
        jobs = [pool.submit(_pool_train, c, space.trainable, device()) for c in configs]
        for job in jobs:
            job.result()
    # leaving ``pool`` joined its processes, so their CPU time is counted now
    return sw.seconds, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu


def _tune_train(config: dict[str, Any]) -> None:
    """Raw Tune's trial: one config through the same ``train`` as the loops, 1 thread,
    reporting each epoch's metrics to Tune (no checkpoint: the loop saves and drops it)."""
    import torch
    from ray import tune

    from abl.trainables.loop import train
    from abl.trainables.spec import TRAINABLES

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        tune.report(metrics)

    torch.set_num_threads(1)
    spec = TRAINABLES.get(config["trainable"])
    train(config["config"], trainable=spec, report=report, device=config["device"])


def tune_seconds(space: Any, root: Path) -> float:
    """Wall seconds of the configs on raw Ray Tune: ``Tuner(...).fit()`` of a function that
    trains one config, on the Ray instance abl uses, 1 CPU each (and abl's GPU share) and
    ``reuse_actors=True`` as abl sets it, no callbacks of abl's: what Tune itself costs.
    Tune keeps its default loggers, as a hand-written script gets it (abl's ``init_ray``
    turns them off in this process's environment, and Tune's results need one)."""
    from ray import tune

    from abl.space import expand
    from abl.space.load import trainable_of

    configs = expand(space, trainable_of(space))
    fraction = gpu_fraction()
    fn = tune.with_resources(_tune_train, {"cpu": 1, "gpu": fraction} if fraction else {"cpu": 1})
    tuner = tune.Tuner(
        fn,
        param_space={
            "config": tune.grid_search(configs),
            "trainable": space.trainable,
            "device": device(),
        },
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=concurrency()),
        run_config=tune.RunConfig(storage_path=str(root / "tune"), verbose=0),
    )
    with without_env(LOGGERS_OFF), Stopwatch() as sw:
        grid = tuner.fit()
    if grid.errors or len(grid) != len(configs):
        raise RuntimeError(f"raw Tune sweep: {len(grid)}/{len(configs)} trials, {grid.errors}")
    return sw.seconds


def warm_up(space: Any) -> None:
    """One epoch of one config in this process, so the first timed loop pays no imports."""
    from abl.space import expand
    from abl.space.load import trainable_of
    from abl.trainables.loop import train

    spec = trainable_of(space)
    config = {**expand(space, spec, limit=1)[0], "train.epochs": 1}
    train(config, trainable=spec, report=ignore_report, device=device())


def run(quick: bool) -> Figure:
    """abl's sweep against the default-threads and the 1-thread sequential loop."""
    import torch

    from abl.space import count_trials

    space = tiny_space(quick)
    n = count_trials(space)
    fig = Figure("throughput", f"{n} trials of {SPACE} (tiny budget): abl vs a sequential loop")
    ensure_ray()
    warm_up(space)
    with tempfile.TemporaryDirectory(prefix="abl-bench-throughput-") as tmp:
        abl_s, driver_cpu = abl_seconds_and_cpu(space, Path(tmp))
        report_s = report_seconds(Path(tmp), space.name)
        lean_s = abl_seconds(space, Path(tmp) / "lean", sinks=("parquet",), report=False)
        tune_s = tune_seconds(space, Path(tmp))
    default_threads = torch.get_num_threads()
    default_s = loop_seconds(space, None)
    one_cpu = cpu_seconds()
    one_s = loop_seconds(space, 1)
    one_cpu = cpu_seconds() - one_cpu
    pool_s, pool_cpu = pool_seconds_and_cpu(space)
    fig.add("default-threads loop / abl", default_s / abl_s, "x", at_least(1.15))
    fig.add("1-thread loop / abl", one_s / abl_s, "x")
    fig.add("abl per trial", abl_s / n, "s/trial")
    # abl's time per trial beyond its share of the work: half a 1-thread trial on 2 CPUs.
    fig.add("abl cost per trial beyond half a 1-thread trial", abl_s / n - one_s / n / 2, "s/trial")
    fig.add(f"default-threads ({default_threads}) loop per trial", default_s / n, "s/trial")
    fig.add("1-thread loop per trial", one_s / n, "s/trial")
    fig.add("abl's end-of-sweep report (built again, timed alone)", report_s, "s")
    fig.add("1-thread loop / 2-process pool", one_s / pool_s)
    fig.add("default-threads loop / 2-process pool (the ceiling for >= 1.15)", default_s / pool_s)
    fig.add(
        "abl's share of the ceiling (2-process pool / abl)", pool_s / abl_s, "x", at_least(0.95)
    )
    fig.add("raw Tune's share of the ceiling (2-process pool / raw Tune)", pool_s / tune_s)
    fig.add("abl, Parquet only and no report: share of the ceiling", pool_s / lean_s)
    fig.add("raw Tune / abl", tune_s / abl_s)
    fig.add("abl driver CPU during its sweep", driver_cpu, "s")
    fig.add("2-process pool: its processes' CPU", pool_cpu, "s")
    fig.add("1-thread loop: CPU", one_cpu, "s")
    fig.notes.append(
        f"overrides: {' '.join(space_overrides(quick))}; abl runs 2 trials of 1 CPU at a time"
    )
    return fig


def report_seconds(root: Path, name: str) -> float:
    """Seconds to build the newest run's report again (what abl adds after the last trial)."""
    from abl.results import build_report
    from abl.rundir import latest_run

    run_dir = latest_run(root, name)
    if run_dir is None:
        raise RuntimeError(f"no run of {name} under {root}")
    with Stopwatch() as sw:
        build_report(run_dir)
    return sw.seconds


def space_overrides(quick: bool) -> tuple[str, ...]:
    """The overrides that cut att_timeseries down for this figure."""
    return (*QUICK, *QUICK_BUDGET) if quick else (*FULL, *BUDGET)
