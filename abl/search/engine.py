"""Space -> Ray Tune Tuner: searcher, scheduler, resources, storage and sinks.

Trials run :func:`abl.trainables.loop.run_trial` on Ray workers; every report reaches the
driver-side sinks (MLflow, Parquet, progress) through one Tune callback. Nothing trial-side
talks to a store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abl.errors import AblError
from abl.rundir import TUNE_DIR
from abl.space.load import trainable_of
from abl.space.schema import MARK_KEYS, Dist, Space
from abl.space.variants import count_trials, expand
from abl.trainables.command import PYTHON_ENV

if TYPE_CHECKING:
    from abl.trainables.command import Command
    from abl.trainables.trainable import Trainable

DEFAULT_MAX_T = 100  # ASHA's max_t for a function trainable that neither space nor config bounds
TRIAL_INDEX = "__trial_index__"  # set by Tune's Repeater: which repeat (seed) of a TPE config


@dataclass(frozen=True)
class SweepOptions:
    """Where a sweep runs and where its results go."""

    root: Path = Path("abl-runs")  # results root: <root>/<name>/<timestamp>/ per sweep
    address: str | None = None  # an existing Ray cluster ("auto", "ray://host:10001"); None: local
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<root>/mlflow.db
    dashboard: bool = True  # start the Ray dashboard (127.0.0.1) with a local cluster
    dashboard_port: int | None = None  # None: 8265, or the next free port (the line says which)
    dashboard_host: str = "127.0.0.1"  # where a local cluster's dashboard listens
    verbose: bool = False  # forward trial stdout/stderr and Ray's logs to the terminal
    sinks: tuple[str, ...] = ("mlflow", "parquet", "progress")
    report: bool = True  # build report.md/html, importance.json, plots/ at the end
    max_failures: int | None = None  # retries per trial; None: the space's max_failures
    # Shut down the Ray this sweep started once its trials are done, while the report is
    # built (the CLI's exit would wait for it after the report).
    stop_ray: bool = False
    # Freeze every object made so far out of Python's collections (gc.freeze) as the trials
    # start: each full collection in the driver would scan torch's, Ray's and MLflow's heaps
    # again (0.1-0.3 s each, about 0.5 s over the quickstart). For a process abl owns (the CLI).
    freeze_gc: bool = False


@dataclass
class Sweep:
    """A finished (or interrupted) sweep: where it wrote and what Ray said."""

    run_dir: Path
    tracking_uri: str
    parent_run_id: str | None
    dashboard_url: str | None
    trials: int
    errors: list[str] = field(default_factory=list)
    report: Path | None = None  # report.md, when the report was built
    report_error: str | None = None  # why the report is missing or not attached
    unfinished: int = 0  # trials not finished (interrupted: ``abl search --resume`` goes on)
    mlflow_pending: int = 0  # trials whose MLflow runs are incomplete (``abl sync`` sends them)
    disk_full: str | None = None  # stopped because a write failed for lack of space: which
    stopped: bool = False  # Tune took a Ctrl-C or SIGTERM (the report is not built)


def default_tracking_uri(root: Path) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else a SQLite file in the results root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').resolve()}"


def trial_config(config: dict[str, Any], trainable: Trainable) -> dict[str, Any]:
    """The config a trial runs with, from the one Tune hands over.

    A Repeater index is folded into ``seed``. Tune gives every trial every key of the param
    space (None where the trial's preset lacks it), so keys that the trial's model kind does
    not have and that are None are dropped, and so are a tuned ablation's marks (``tune.*``).
    """
    config = {k: v for k, v in config.items() if k not in MARK_KEYS}
    if TRIAL_INDEX in config:
        config["seed"] = int(config.get("seed", 0) or 0) + int(config.pop(TRIAL_INDEX))
    return trainable.trial_config(config)


def run_function(
    config: dict[str, Any],
    trainable_name: str | Command,
    plugins: tuple[str, ...] = (),
    trials_dir: str = TUNE_DIR,
    metric: str = "val/loss",
    mode: str = "min",
    rungs: str | None = None,
) -> None:
    """The function trainable Tune runs: the space's trainable, given its trial's config and
    its folder in the run directory (``trials_dir/<trial id>``, the same across retries and
    resumes; Tune's own trial directory can be a staging copy, and a reused actor's stays that
    of its first trial); or a pack of trials (:mod:`abl.search.packs`)."""
    from ray import tune

    from abl.search.packs import members_of, run_pack_trial
    from abl.trainables.registry import import_plugins
    from abl.trainables.trainable import TrialContext, lookup

    import_plugins(plugins)
    trainable = lookup(trainable_name)
    members = members_of(config)
    if members is not None:
        run_pack_trial(members, trainable, metric, mode, rungs=rungs)
        return
    trial = TrialContext(Path(trials_dir) / tune.get_context().get_trial_id(), metric)
    trainable.run(trial_config(config, trainable), trial)


def _suggest(trial: Any, key: str, dist: Dist) -> Any:
    if dist.kind == "choice":
        return trial.suggest_categorical(key, list(dist.args))
    low, high = dist.args
    if dist.kind == "int":
        return trial.suggest_int(key, int(low), int(high))  # type: ignore[arg-type]
    return trial.suggest_float(key, float(low), float(high), log=dist.kind == "loguniform")  # type: ignore[arg-type]


class DefineByRun:
    """Optuna define-by-run space: grid axes as categoricals, ``when:`` blocks as branches.

    A class, not a closure: OptunaSearch pickles its space into Tune's experiment state.
    """

    def __init__(self, space: Space, trainable: Trainable) -> None:
        self.space = space
        self.trainable = trainable

    def __call__(self, trial: Any) -> dict[str, Any]:
        space, trainable = self.space, self.trainable
        given = {k: trial.suggest_categorical(k, list(v)) for k, v in space.grid.items()}
        given.update({k: _suggest(trial, k, d) for k, d in space.sample.items()})
        constants = dict(space.fixed)
        defaults = trainable.resolve({}, space.source)
        for block in space.when:
            if block.matches({**defaults, **constants, **given}):
                given.update(
                    {k: trial.suggest_categorical(k, list(v)) for k, v in block.grid.items()}
                )
                given.update({k: _suggest(trial, k, d) for k, d in block.sample.items()})
                constants.update(block.fixed)
        merged = {**constants, **given}
        full = trainable.resolve(merged, space.source)
        return {k: v for k, v in full.items() if k not in given}


def tune_callbacks(callbacks: list[Any]) -> list[Any]:
    """``callbacks`` and Tune's JSON logger, the one of Tune's loggers abl keeps.

    Its ``result.json`` per trial is what Tune's own analysis reads and what ``--resume``
    recovers unflushed reports from. Tune's CSV and TensorBoard loggers repeat what MLflow and
    Parquet hold, on the driver thread, for every report: ``init_ray`` turns them off unless
    ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=0`` asks for them. The checkpoint ledger is what
    ``--resume`` falls back on when Tune's snapshot names a checkpoint that was pruned.
    """
    from ray.tune.logger import JsonLoggerCallback

    from abl.search._checkpoints import CheckpointLedger

    return [*callbacks, JsonLoggerCallback(), CheckpointLedger()]


def build_tuner(
    space: Space, run_dir: Path, callbacks: list[Any], *, max_failures: int | None = None
) -> Any:
    """The Ray Tune Tuner for a space; its experiment state goes to ``run_dir/tune``."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from abl.search._asha import MarkingASHA

    target = trainable_of(space)
    param_space: dict[str, Any] = {}
    asha_class = MarkingASHA
    if space.tune is not None:
        from abl.search.tuned import TunedASHA, tuned_searcher

        asha = space.scheduler.asha
        # A full trial's length tells pruned trials apart (unknown for a function without
        # train.epochs).
        max_t = (asha.max_t or _max_epochs(space, target)) if asha else None
        search_alg = tuned_searcher(space, target, max_t=max_t, run_dir=run_dir)
        num_samples = count_trials(space)
        asha_class = TunedASHA
    elif space.adaptive is not None:
        from abl.search.adaptive import adaptive_searcher

        variants = expand(space, target)
        asha = space.scheduler.asha
        max_t = (asha.max_t or _max_epochs(space, target)) if asha else None
        search_alg = adaptive_searcher(space, variants, max_t=max_t, run_dir=run_dir)
        num_samples = len(variants)  # at most: the searcher ends the sweep when it is decided
    elif space.search.algorithm == "tpe":
        search_alg = _tpe(space, target)
        num_samples = space.search.samples * space.seeds
    else:
        variants = expand(space, target)
        if space.pack > 1:
            from abl.search.packs import pack_points

            variants = pack_points(variants, space.pack)
        # Tune ignores max_concurrent_trials for a generator given as search_alg: set it here.
        search_alg = BasicVariantGenerator(
            points_to_evaluate=variants, max_concurrent=space.search.concurrency or 0
        )
        num_samples = len(variants)
        # Tune only lets a preset set keys that the param space declares.
        param_space = dict.fromkeys(k for v in variants for k in v)
    scheduler = None
    if space.scheduler.asha is not None and space.pack == 1:  # a pack's members: member_rungs
        scheduler = asha_class(**_asha_args(space, target))
    return tune.Tuner(
        trainable(space, run_dir, rungs=member_rungs(space, run_dir)),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=space.metric,
            mode=space.mode,
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=space.search.concurrency
            if space.search.algorithm == "tpe" and space.adaptive is None
            else None,
            reuse_actors=True,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=str(run_dir),
            callbacks=tune_callbacks(callbacks),
            verbose=0,
            failure_config=tune.FailureConfig(
                max_failures=space.max_failures if max_failures is None else max_failures
            ),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )


def trainable(space: Space, run_dir: Path, rungs: str | None = None) -> Any:
    """What Tune runs for ``space`` in ``run_dir``: its function trainable with the space's
    resources; ``rungs``, the actor that prunes pack members (:func:`member_rungs`)."""
    from ray import tune

    from abl.search.raycompat import with_mixins

    fn = tune.with_parameters(
        run_function,
        trainable_name=space.trainable,
        plugins=tuple(space.plugins),
        trials_dir=str(run_dir / TUNE_DIR),
        metric=space.metric,
        mode=space.mode,
        rungs=rungs,
    )
    fn = tune.with_resources(fn, {"cpu": space.resources.cpu, "gpu": space.resources.gpu})
    return with_mixins(fn, type("TrialName", (TrialName,), {"sweep": space.name}))


class TrialName:
    """Names a trial's actor after the sweep and the trial (``quickstart 9a1e4_00000``).

    Ray records an actor's repr once, when the actor is created, and the dashboard shows it
    on the Actors page and in the Logs; Tune's function trainable returns its ``_name``
    there (:func:`abl.search.raycompat.name_actor`). Tune reuses an actor for the next trial (a new actor per trial doubled the
    quickstart's wall time), so the dashboard keeps the name of the actor's first trial;
    each later trial writes Ray's log-prefix line (``:actor_name:quickstart 9a1e4_00003``)
    into the actor's log, which then says where that trial starts, and Ray's log lines
    forwarded by ``-v`` carry the trial that runs.
    """

    sweep = ""

    def setup(self, config: dict[str, Any]) -> None:
        from abl.search.raycompat import name_actor

        name_actor(self, f"{self.sweep} {self.trial_id}")
        super().setup(config)  # type: ignore[misc]

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        from abl.search.raycompat import name_actor

        name_actor(self, f"{self.sweep} {self.trial_id}", reused=True)
        return super().reset_config(new_config)  # type: ignore[misc]


def mark_statuses(
    run_dir: Path,
    errored: set[str],
    unfinished: set[str] | frozenset[str] = frozenset(),
    ended: set[str] | frozenset[str] = frozenset(),
) -> int:
    """Make Tune's newest experiment snapshot agree with the Parquet store before a resume:
    ``errored`` trials ERROR, ``unfinished`` ones that it has as ERROR PENDING, and ``ended``
    ones (completed, pruned, diverged) TERMINATED; returns how many it changed.

    Ray 2.60 can leave a trial that failed for good (``max_failures`` spent) as RUNNING in
    the snapshot it saves at the end, and would then resume it like an interrupted trial.
    The Parquet store, written when the trial failed, says what happened; only
    ``--retry-errored`` runs such a trial again. A trial that failed only because the disk was
    full is not errored there (it stayed ``running``): it continues from its checkpoint. A
    snapshot older than the store (a full disk kept Tune from writing the last one) can have
    a trial running that has ended since: it is not run again.
    """
    from abl.search.raycompat import Snapshot, release_finished

    snapshot = Snapshot.newest(run_dir / TUNE_DIR) if errored or unfinished or ended else None
    if snapshot is None:
        return 0
    changed = 0
    done: set[str] = set()  # trials the snapshot has as finished, after the changes
    for trial in snapshot.trials():
        status, trial_id = trial.status, trial.trial_id
        if trial_id in errored and status != "ERROR":
            trial.status = "ERROR"
        elif trial_id in unfinished and status == "ERROR":
            trial.status = "PENDING"
        elif trial_id in ended and status not in ("TERMINATED", "ERROR"):
            trial.status = "TERMINATED"
        else:
            if status in ("TERMINATED", "ERROR"):
                done.add(trial_id)
            continue
        if trial.status in ("TERMINATED", "ERROR"):
            done.add(trial_id)
        changed += 1
    if changed:
        snapshot.save()
    # Tune's grid searcher starts no trial while ``max_concurrent`` of its own run, and counts
    # a trial as running until told it finished; one finished here is never reported again.
    release_finished(run_dir / TUNE_DIR, done)
    return changed


@contextlib.contextmanager
def quiet_unstarted_trials() -> Iterator[None]:
    """Hide Tune's warning about each trial with no results yet, which an interrupted or
    resumed sweep always has: a line per pending trial says nothing the user can act on."""
    log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def adds_trials_one_by_one(space: Space) -> bool:
    """Whether ``space``'s searcher suggests its trials as results arrive (adaptive seeds, a
    tuned ablation, TPE), rather than all at the start (a grid or random space, up to
    Tune's 200 pending trials)."""
    return space.adaptive is not None or space.tune is not None or space.search.algorithm == "tpe"


@contextlib.contextmanager
def snapshot_period(space: Space) -> Iterator[None]:
    """Tune snapshots its experiment state at every step while a searcher adds ``space``'s
    trials one by one, instead of every 10 s or more.

    A grid's trials are all in Tune's first snapshot. A searcher that suggests trials as results
    arrive adds them one by one, and a trial started after the last snapshot would be unknown
    to a resumed sweep: its row would stay running for ever, its seed would run again under a
    new id, and a tuned ablation's searcher would wait for it for ever (a killed tuned sweep's
    resume hung so). Snapshotted at every step, a trial is in the snapshot before its actor
    starts (Tune adds a trial in one step and starts it in a later one). Tune writes the
    snapshot to its staging folder and copies it to ``run_dir/tune`` on a background thread,
    skipping a step's copy while the last one runs: the run directory's snapshot can be a
    step or more behind the Parquet store, which writes a trial's end at once. A resume takes
    such trials' ends from their rows (``mark_statuses``, and the searchers' ``reconcile``).
    ``TUNE_GLOBAL_CHECKPOINT_S`` is Tune's documented setting; a value the user set is kept.
    """
    key = "TUNE_GLOBAL_CHECKPOINT_S"
    if not adds_trials_one_by_one(space) or key in os.environ:
        yield
        return
    os.environ[key] = "0"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def restore_tuner(
    space: Space,
    run_dir: Path,
    callbacks: list[Any],
    *,
    retry_errored: bool = False,
    max_failures: int | None = None,
) -> Any:
    """The Tuner of an interrupted sweep, from ``run_dir/tune``: finished trials stay finished,
    unfinished ones continue from their last checkpoint, errored ones too if ``retry_errored``.
    """
    from ray import tune

    from abl.search import raycompat

    with quiet_unstarted_trials():
        tuner = tune.Tuner.restore(
            str(run_dir / TUNE_DIR),
            trainable=trainable(space, run_dir, rungs=member_rungs(space, run_dir)),
            resume_unfinished=True,
            resume_errored=retry_errored,
        )
    # Tune restores the RunConfig pickled by the first session, sinks included. A resumed
    # sweep gets fresh sinks (a new terminal, maybe a new tracking URI) that read their state
    # from the run directory, and the failure budget given now.
    run_config = raycompat.run_config(tuner)
    run_config.callbacks = tune_callbacks(callbacks)
    if max_failures is not None:
        run_config.failure_config = tune.FailureConfig(max_failures=max_failures)
    return tuner


def _asha_args(space: Space, target: Trainable) -> dict[str, Any]:
    """AsyncHyperBandScheduler's arguments for the space's ``scheduler.asha``."""
    asha = space.scheduler.asha
    assert asha is not None
    max_t = asha.max_t or _max_epochs(space, target) or DEFAULT_MAX_T
    return {
        "time_attr": "training_iteration",
        "max_t": max_t,
        "grace_period": min(asha.grace_period, max_t),
        "reduction_factor": asha.reduction_factor,
    }


# The driver's handle of the sweep's member rungs: a named actor lives while a handle does.
_RUNGS: list[Any] = []


def member_rungs(space: Space, run_dir: Path) -> str | None:
    """Start the actor that prunes the members of a packed ASHA sweep
    (:class:`abl.search._asha.MemberRungs`) and return its name; None for any other sweep.

    In a resumed sweep it starts from the rungs the run directory's store records: each
    member's reports, and the members ASHA had pruned.
    """
    if space.pack == 1 or space.scheduler.asha is None:
        return None
    import uuid

    import ray

    from abl.results.store import TrialStatus, read_history, read_trials
    from abl.search._asha import MemberRungs

    name = f"abl-rungs-{uuid.uuid4().hex[:12]}"
    keeper = ray.remote(num_cpus=0)(MemberRungs).options(name=name)
    handle = keeper.remote(space.metric, space.mode, **_asha_args(space, trainable_of(space)))
    history = read_history(run_dir)
    if history.num_rows and {"epoch", space.metric} <= set(history.column_names):
        rows = history.sort_by([("trial_id", "ascending"), ("step", "ascending")]).to_pylist()
        reports = [
            (r["trial_id"], {"training_iteration": r["epoch"], space.metric: r[space.metric]})
            for r in rows
            if "." in r["trial_id"] and r["epoch"] is not None and r[space.metric] is not None
        ]
        pruned = {
            r["trial_id"]
            for r in read_trials(run_dir).to_pylist()
            if r.get("status") == TrialStatus.PRUNED.value
        }
        ray.get(handle.replay.remote(reports, pruned))
    _RUNGS[:] = [handle]
    return name


def _tpe(space: Space, target: Trainable) -> Any:
    import optuna
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search.repeater import Repeater

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = OptunaSearch(
        space=DefineByRun(space, target),
        metric=space.metric,
        mode=space.mode,
        sampler=optuna.samplers.TPESampler(seed=space.search.seed),
    )
    return Repeater(searcher, repeat=space.seeds, set_index=True) if space.seeds > 1 else searcher


def _max_epochs(space: Space, trainable: Trainable) -> int | None:
    configs = expand(space, trainable, limit=10_000)
    return max((int(c["train.epochs"]) for c in configs if "train.epochs" in c), default=None)


def check_port(host: str, port: int) -> None:
    """Fail in one line when ``--dashboard-port`` is taken (Ray would fail in a traceback)."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise AblError(
                f"--dashboard-port {port} is taken on {host} ({exc.strerror}); pick another, "
                "or leave --dashboard-port out to get 8265 or the next free port"
            ) from None


def check_address(address: str | None, timeout_s: float = 10.0) -> None:
    """Fail in one line when ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``) does not accept
    a connection: Ray would retry that GCS for minutes before giving up. ``auto`` is Ray's."""
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        raise AblError(
            f"--address must be a running Ray cluster's head; nothing answers at '{address}' "
            f"({type(exc).__name__}: {exc}). Start one with `ray start --head`, or leave "
            "--address out to run on this machine"
        ) from None


class _DropMessages(logging.Filter):
    """Drops records whose message starts with one of ``prefixes``."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def quiet_library_logs() -> None:
    """Keep library chatter that abl's own lines cover off a non-verbose terminal (``-v`` keeps it).

    Ray warns at every local start that token authentication is on (abl's dashboard line says
    how to sign in) and, after Ctrl-C, how to resume with Tuner.restore (abl prints its own
    ``abl search --resume`` line); MLflow logs INFO lines while it creates a new SQLite store.
    Ray's own errors for the driver from the raylet go too, such as the 1,000-character
    "(raylet) A worker died or was killed ..." line for a killed trial worker: the trial fails
    or is retried, and abl's progress line says so (the error's text is in trials.parquet).
    """
    from abl.search import raycompat

    drops = {
        raycompat.TOKEN_LOGGER: ("Token authentication is enabled",),
        # abl says it was interrupted and prints its own resume line, and a line per trial
        # that errored ("Stop signal": sweep.py)
        "ray.tune.tune": ("Experiment has been interrupted", "Trials did not complete"),
    }
    for name, prefixes in drops.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(*prefixes))
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # and if it was imported already
    raycompat.drop_raylet_errors()


def init_ray(options: SweepOptions) -> str | None:
    """Start (or join) Ray; returns the dashboard URL when there is one."""
    import ray

    # Trials keep the driver's working directory, so relative data paths mean what they say.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault(PYTHON_ENV, sys.executable)  # a command trainable's `python`
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # abl checkpoints every epoch on purpose (pruning, retries, resume); Ray warns about it.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # see tune_callbacks
    if not options.verbose:  # a failed trial is one progress line; its traceback is in Parquet
        os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    if ray.is_initialized():
        return None
    if not options.verbose:
        quiet_library_logs()
    kwargs: dict[str, Any] = {
        "log_to_driver": options.verbose,
        "logging_level": logging.INFO if options.verbose else logging.WARNING,
        "configure_logging": True,
    }
    if options.address:
        check_address(options.address)
        try:
            ctx = ray.init(address=options.address, **kwargs)
        except ConnectionError as exc:  # "auto" with no cluster on this machine, for one
            raise AblError(
                f"--address {options.address}: {str(exc).splitlines()[0]} Leave --address "
                "out to run on this machine"
            ) from None
    else:
        # "local": a new cluster even when `ray start` left one running here (--address auto joins it).
        if options.dashboard and options.dashboard_port is not None:
            check_port(options.dashboard_host, options.dashboard_port)
        ctx = ray.init(
            address="local",
            include_dashboard=options.dashboard,
            dashboard_host=options.dashboard_host,
            dashboard_port=options.dashboard_port,  # None: Ray's 8265, or the next free one
            **kwargs,
        )
    url = getattr(ctx, "dashboard_url", None)
    return f"http://{url}" if url and not str(url).startswith("http") else url
