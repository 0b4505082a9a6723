"""Run a whole sweep: run directory, sinks, Ray, the Tuner, and what to print at the end."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from abl.errors import AblError, error_line, one_of
from abl.redact import is_redacted
from abl.results.store import TrialStatus
from abl.rundir import MLFLOW_JSON, SPACE_FILE, TUNE_DIR, new_run_dir
from abl.search.engine import (
    Sweep,
    SweepOptions,
    adds_trials_one_by_one,
    build_tuner,
    default_tracking_uri,
    init_ray,
    mark_statuses,
    quiet_unstarted_trials,
    restore_tuner,
    snapshot_period,
    trial_config,
)
from abl.space.schema import MARK_KEYS, Space
from abl.space.variants import count_trials

_LIVE = (TrialStatus.PENDING, TrialStatus.RUNNING)


def make_sinks(names: tuple[str, ...], *, tracking_uri: str, console: Any = None) -> list[Any]:
    """The sinks a sweep streams to, in the order of ``names`` (any order gives the same
    stores; MLflow before Parquet has Parquet compact the run ids MLflow learns as it closes)."""
    from abl.search.sinks import MLflowSink, ParquetSink, ProgressSink

    makers = {
        "mlflow": lambda: MLflowSink(tracking_uri=tracking_uri),
        "parquet": ParquetSink,
        "progress": lambda: ProgressSink(console=console),
    }
    return [makers[name]() for name in dict.fromkeys(names) if name in makers]


def run_sweep(space: Space, options: SweepOptions, *, console: Any = None) -> Sweep:
    """Run every trial of ``space`` on Ray and stream results to the sinks; returns where they went.

    >>> from abl.space import load_space  # doctest: +SKIP
    >>> run_sweep(load_space("quickstart"), SweepOptions())  # doctest: +SKIP
    """
    tracking_uri = options.tracking_uri or default_tracking_uri(options.root)
    owned = not ray_was_up()
    # a bad --address, or a model that rejects its config, fails before any file exists
    dashboard_url = start_ray(options, console, space=space, tracking_uri=tracking_uri)
    run_dir = new_run_dir(options.root, space.name)
    (run_dir / SPACE_FILE).write_text(space.to_yaml(), encoding="utf-8")
    return _execute(
        space, run_dir, options, tracking_uri, dashboard_url, console=console, owned=owned
    )


def resume_sweep(
    run_dir: Path,
    options: SweepOptions,
    *,
    retry_errored: bool = False,
    console: Any = None,
) -> Sweep:
    """Finish an interrupted sweep in ``run_dir`` (driver killed, Ctrl-C, lost head node).

    Finished trials are not run again; unfinished ones continue from their last checkpoint;
    errored ones run again from theirs when ``retry_errored``. The same Parquet stores and the
    same MLflow parent run are continued: every trial keeps one row and one child run.
    """
    from abl.search.disk import broken_state, repair_state
    from abl.search.sinks.parquet import recover_reports
    from abl.space.load import load_space

    if not (run_dir / TUNE_DIR / "tuner.pkl").is_file():
        raise AblError(
            f"--resume needs a sweep's run directory with Ray Tune state ({TUNE_DIR}/tuner.pkl); "
            f"{run_dir} has none (the sweep never started, or its {TUNE_DIR}/ was deleted)"
        )
    space = load_space(str(run_dir / SPACE_FILE), models=False)  # checked while Ray starts
    tracking_uri = (
        options.tracking_uri
        or _saved_tracking_uri(run_dir)  # a redacted one is an error, before Ray starts
        or default_tracking_uri(options.root)
    )
    repair_state(run_dir / TUNE_DIR)  # a full disk may have truncated Tune's state files
    broken = broken_state(run_dir / TUNE_DIR)
    if broken:
        raise AblError(
            f"--resume needs Ray Tune's state in {run_dir / TUNE_DIR}; {', '.join(broken)} "
            "was cut short (a full disk?) and no complete copy of it is left"
        )
    recover_reports(run_dir, run_dir / TUNE_DIR)
    owned = not ray_was_up()
    dashboard_url = start_ray(options, console, space=space, tracking_uri=tracking_uri)
    return _execute(
        space,
        run_dir,
        options,
        tracking_uri,
        dashboard_url,
        console=console,
        resume=True,
        retry=retry_errored,
        owned=owned,
    )


def start_ray(
    options: SweepOptions,
    console: Any = None,
    *,
    space: Space | None = None,
    tracking_uri: str | None = None,
) -> str | None:
    """Start (or join) Ray and say where its dashboard is, before the first trial starts.

    Ray takes seconds to start, mostly waiting for its processes; meanwhile a thread builds
    ``space``'s models on the meta device (:func:`~abl.space.load.check_space_models`) and
    loads what the sweep needs next (:class:`_Prepare`). A model that rejects its config
    stops the Ray just started and is raised, as one error line.
    """
    from abl.search.dashboard import dashboard_line

    if options.freeze_gc:  # torch is loaded: its objects need no scanning from here on
        gc.freeze()
    prepare = _Prepare(space, options, tracking_uri)
    prepare.start()
    joined = ray_was_up()
    try:
        url = init_ray(options)
    finally:
        prepare.join()
    if prepare.error is not None:
        if not joined:
            import ray

            ray.shutdown()
        raise prepare.error
    if url:
        _say(
            console,
            dashboard_line(url, asked_port=options.dashboard_port, cluster=bool(options.address)),
        )
    return url


class _Prepare(threading.Thread):
    """What a sweep does while Ray starts: check the models, then import Ray Tune and the
    sinks, which the sweep would otherwise import after Ray is up. The MLflow store (its
    import, and a new store's tables: seconds) is made sure of on a thread of its own that
    nobody waits for: the MLflow sink's writer thread waits on its file lock if need be."""

    def __init__(self, space: Space | None, options: SweepOptions, tracking_uri: str | None):
        super().__init__(name="abl-prepare", daemon=True)
        self.space, self.options, self.tracking_uri = space, options, tracking_uri
        self.error: BaseException | None = None

    def run(self) -> None:
        if self.space is not None:
            from abl.space.load import check_space_models

            try:
                check_space_models(self.space)
            except BaseException as exc:  # raised in the main thread once Ray is up
                self.error = exc
                return
        if "mlflow" in self.options.sinks and self.tracking_uri:
            _background(_ensure_store, self.tracking_uri)
        import ray.tune  # noqa: F401

        import abl.search.sinks  # noqa: F401


def _preload_report() -> None:
    """Import the report's modules on a thread while the trials run (about 1.5 s that the
    report would otherwise spend after the last one); from the first report on, when the
    trials' workers have started."""
    from abl.results.report import preload

    _background(preload)


def _background(fn: Callable[..., object], *args: Any) -> None:
    """``fn(*args)`` on a daemon thread nobody waits for (what it loads is used if ready).

    Its failures are its own: one that the sweep's end interrupts (imports after the
    interpreter began to exit raise "can't register atexit after shutdown") is no traceback
    for the user; whatever it would have loaded is loaded again where it is used."""

    def quietly() -> None:
        with contextlib.suppress(BaseException):
            fn(*args)

    threading.Thread(target=quietly, name=f"abl-{fn.__name__}", daemon=True).start()


def _ensure_store(tracking_uri: str) -> None:
    from abl.search.sinks.mlflow import ensure_store

    # A store that fails here fails again in the sink, which says so and goes on.
    with contextlib.suppress(Exception):
        ensure_store(tracking_uri)


def ray_was_up() -> bool:
    """Whether this process is connected to Ray already (then abl did not start it)."""
    import ray

    return bool(ray.is_initialized())


def _execute(
    space: Space,
    run_dir: Path,
    options: SweepOptions,
    tracking_uri: str,
    dashboard_url: str | None,
    *,
    console: Any,
    resume: bool = False,
    retry: bool = False,
    owned: bool = False,
) -> Sweep:
    """Run (or resume) the sweep on the Ray already started; ``owned``: this sweep started
    it (``options.stop_ray`` then shuts it down while the report is built)."""
    from abl.search.sinks import SinkCallback, SweepInfo
    from abl.search.sinks.parquet import prior_records
    from abl.space.load import trainable_of

    target = trainable_of(space)
    sweep = SweepInfo(
        name=space.name,
        run_dir=run_dir,
        metric=space.metric,
        mode=space.mode,
        space_file=run_dir / SPACE_FILE,
        total_trials=count_trials(space),
        tracking_uri=tracking_uri,
        adaptive=space.adaptive is not None,
        snapshots_every_step=adds_trials_one_by_one(space)
        and "TUNE_GLOBAL_CHECKPOINT_S" not in os.environ,
    )
    prior = prior_records(run_dir, space.metric, space.mode) if resume else {}
    rerun = (*_LIVE, TrialStatus.ERRORED) if retry else _LIVE
    sweep.ended_before = sum(r.status not in rerun for r in prior.values())
    sweep.best_before = best_completed(prior.values(), space.metric, space.mode)
    sinks = make_sinks(options.sinks, tracking_uri=tracking_uri, console=console)
    callback = SinkCallback(sinks, sweep, config_of=_FullConfig(target), prior=prior)
    if options.report:
        callback.at_first_result = _preload_report
    if resume:
        from abl.search._checkpoints import repair_checkpoints
        from abl.search.packs import tune_statuses

        errored, unfinished, ended = tune_statuses(
            errored={k for k, r in prior.items() if r.status == TrialStatus.ERRORED},
            unfinished={k for k, r in prior.items() if r.status in _LIVE},
            ended={k for k, r in prior.items() if r.status not in (*_LIVE, TrialStatus.ERRORED)},
        )
        mark_statuses(run_dir, errored=errored, unfinished=unfinished, ended=ended)
        for repair in repair_checkpoints(run_dir, errored=retry):
            _say(console, repair.line())
        again = [
            k
            for k, r in prior.items()
            if r.status in _LIVE or (retry and r.status == TrialStatus.ERRORED)
        ]
        for line in target.restart_lines(run_dir / TUNE_DIR, sorted(again)):
            _say(console, line)
        tuner = restore_tuner(
            space, run_dir, [callback], retry_errored=retry, max_failures=options.max_failures
        )
    else:
        tuner = build_tuner(space, run_dir, [callback], max_failures=options.max_failures)
    if options.freeze_gc:
        gc.collect(1)  # the young garbage goes first; the rest stays, frozen
        gc.freeze()
    with _stops_gracefully(callback, console, verbose=options.verbose) as guard:
        with quiet_unstarted_trials(), snapshot_period(space):
            try:
                grid: Any = tuner.fit()
            except Exception as exc:
                if callback.disk_full is None:
                    _raise_metric_error(exc, space, run_dir)
                # Tune stopped and saved its state, then failed reading back the error files
                # it had written on the full disk (empty ones); the stores hold what happened.
                grid = []
        guard.fit_returned(interrupted=callback.unfinished() > 0 or guard.stopped)
        stopping = _stop_ray() if options.stop_ray and owned else None
        try:
            return _conclude(
                grid, run_dir, options, tracking_uri, dashboard_url, sinks, callback,
                resume=resume, stopped=guard.stopped,
            )  # fmt: skip
        finally:
            if stopping is not None:
                stopping.join()


def _stop_ray() -> threading.Thread:
    """``ray.shutdown()`` on a thread: it waits about a second for Ray's processes to exit,
    which the report need not wait for."""
    import ray

    thread = threading.Thread(target=ray.shutdown, name="abl-ray-shutdown", daemon=True)
    thread.start()
    return thread


def _conclude(
    grid: Any,
    run_dir: Path,
    options: SweepOptions,
    tracking_uri: str,
    dashboard_url: str | None,
    sinks: list[Any],
    callback: Any,
    *,
    resume: bool,
    stopped: bool,
) -> Sweep:
    """What the sweep did, its MLflow runs made whole on a resume, and its report."""
    errors = _errors(grid)
    parent = next((s.parent_run_id for s in sinks if hasattr(s, "parent_run_id")), None)
    sweep_result = Sweep(
        run_dir=run_dir,
        tracking_uri=tracking_uri,
        parent_run_id=parent,
        dashboard_url=dashboard_url,
        trials=_trial_count(grid) or callback.sweep.total_trials or 0,  # ran (or at most)
        errors=errors,
        unfinished=callback.unfinished(),
        mlflow_pending=sum(getattr(s, "pending", 0) for s in sinks),
        disk_full=callback.disk_full,
        stopped=stopped,
    )
    if resume and parent is not None and not sweep_result.mlflow_pending:
        sweep_result.mlflow_pending = reconcile_mlflow(callback.sweep)
    if options.report and not (sweep_result.unfinished or sweep_result.disk_full or stopped):
        sweep_result.report, sweep_result.report_error = publish_report(
            run_dir, tracking_uri, parent
        )
    return sweep_result


def _say(console: Any, line: str) -> None:
    """One line to the terminal (a Console on stdout when none is given), as the sinks print."""
    from rich.console import Console
    from rich.text import Text

    (console or Console()).print(Text(line), soft_wrap=True)


def _trial_count(grid: Any) -> int:
    """Trials Tune ran, each member of a pack counted (:mod:`abl.search.packs`)."""
    from abl.search.packs import members_of

    return sum(len(members_of(r.config or {}) or [None]) for r in grid)


def _errors(grid: Any) -> list[str]:
    """The first line of each trial's error, less those of a full disk (the sweep stopped)."""
    from abl.search.disk import is_disk_full

    lines = [str(r.error).splitlines()[0] for r in grid if r.error is not None]
    return [line for line in lines if not is_disk_full(line)]


def _raise_metric_error(exc: Exception, space: Space, run_dir: Path) -> None:
    """Re-raise ``exc``, as a one-line error if Tune stopped because the metric is missing."""
    reported = _metric_not_reported(exc)
    if reported is None:
        raise exc
    raise AblError(
        f"metric must be one that trainable '{space.trainable}' reports (its first "
        f"report had: {one_of(reported) or 'nothing'}); got '{space.metric}' "
        f"({space.source}, metric); results so far are in {run_dir}"
    ) from None


def reconcile_mlflow(sweep: Any) -> int:
    """After a resume, send MLflow what Parquet holds and it lacks; returns the trials still
    pending (0, or all of them when the store did not answer: ``abl sync`` sends them later).

    A killed driver can leave a trial's last steps or its final status unsent (its writer thread
    died with it); a trial that ended after Tune's last snapshot reports nothing on resume, so
    the sinks alone would never send them. This is ``abl sync``'s diff, run by the resume.
    """
    from abl.results.store import read_history, read_trials
    from abl.search.sinks.mlflow import sync_run

    trials = read_trials(sweep.run_dir).to_pylist()
    try:
        sync_run(sweep, trials, read_history(sweep.run_dir).to_pylist())
    except Exception:  # the tracking store is down: say so, as a sweep would
        return len(trials)
    return 0


def _metric_not_reported(exc: BaseException) -> list[str] | None:
    """The keys of the first report, if Tune stopped because it lacked the sweep's metric.

    Only a custom function trainable can get here (a registered one's metrics are checked
    before the sweep).
    """
    from abl.search.raycompat import report_without_metric
    from abl.search.sinks.base import RAY_KEYS

    result = report_without_metric(exc)
    if result is None:
        return None
    return [k for k in result if k not in RAY_KEYS and not k.startswith("config/")]


class _FullConfig:
    """The full flat config the sinks record for a trial (defaults and seed filled in)."""

    def __init__(self, trainable: Any) -> None:
        self.trainable = trainable

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        marks = {k: config[k] for k in MARK_KEYS if k in config}  # tuned ablations' phase, arm
        full = self.trainable.resolve(trial_config(config, self.trainable), "trial config")
        return {**full, **marks}


def _saved_tracking_uri(run_dir: Path) -> str | None:
    """The tracking URI the sweep in ``run_dir`` logged to (its mlflow.json), if any."""
    try:
        uri = json.loads((run_dir / MLFLOW_JSON).read_text()).get("tracking_uri") or None
    except (OSError, ValueError):
        return None
    if uri and is_redacted(uri):
        raise AblError(
            f"the sweep in {run_dir} logged to {uri}, whose password abl does not store; "
            "give it again with --tracking-uri or $MLFLOW_TRACKING_URI"
        )
    return uri


STOPPING = "stopping: saving the results so far (Ctrl-C again hurries it)"
HURRYING = "finishing writes: the sweep stops once its results so far are saved"


class _StopNotice(logging.Filter):
    """Tune's warning on the first Ctrl-C: abl says it in its own line instead (``-v`` keeps
    Tune's too). Tune's handler can run twice: a second Ctrl-C that lands while the first is
    still being handled (its warning being logged) runs the handler Tune has not yet swapped
    back for abl's; that one is a second Ctrl-C (``again``), as abl's handler would take it."""

    def __init__(
        self,
        say: Callable[[str], None],
        verbose: bool,
        guard: _Guard,
        callback: Any,
        again: Callable[[], None],
    ) -> None:
        super().__init__()
        self.say, self.verbose, self.guard, self.callback = say, verbose, guard, callback
        self.again = again

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Stop signal received"):
            return True
        if self.guard.stopped:
            self.again()
            return self.verbose
        self.guard.stopped = True
        self.callback.stopping()
        self.say(STOPPING)
        return self.verbose


class _Guard:
    """What the Ctrl-C handler of a running sweep needs to know: whether Tune still runs it,
    or it stopped interrupted (its writes and lines are still to come), and whether Tune took
    a Ctrl-C (``stopped``: the user asked to stop, even if every trial had finished by then)."""

    def __init__(self) -> None:
        self.fitting = True
        self.interrupted = False
        self.stopped = False

    def fit_returned(self, *, interrupted: bool) -> None:
        self.fitting, self.interrupted = False, interrupted


@contextlib.contextmanager
def _stops_gracefully(callback: Any, console: Any, *, verbose: bool = False) -> Iterator[_Guard]:
    """Ctrl-C stops the sweep, and a second one never stops it short of its writes.

    Tune takes the first Ctrl-C (abl says ``stopping: ...``): it stops the trials and saves
    its state, and the sinks flush and close (``--resume`` continues the sweep). Its handler
    then puts back the one it found, abl's, which takes any further Ctrl-C: instead of
    Python's KeyboardInterrupt, which would escape ``Tuner.fit`` while Tune stops the trials
    and skip the sinks' close, the sinks hurry (:meth:`abl.search.sinks.base.Sink.hurry`) and
    the user is told once that the writes are finishing. That holds until the interrupted
    sweep returns (one whose trials had all finished when Tune took the Ctrl-C too: it skips
    its report); a Ctrl-C before Tune set the sinks up, or after a sweep that was not
    interrupted (its report being built), is a KeyboardInterrupt, as ever. SIGTERM (systemd,
    Kubernetes, ``kill``) is a Ctrl-C. Only in the main thread.
    """
    guard = _Guard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    told = False

    def say(line: str) -> None:
        if console is not None:
            console.print(f"[yellow]{line}[/]")
        else:
            print(line, file=sys.stderr, flush=True)

    def hurry() -> None:
        nonlocal told
        callback.hurry()
        if not told:
            told = True
            say(HURRYING)

    def again(signum: int, frame: Any) -> None:
        if not callback.opened or not (guard.fitting or guard.interrupted):
            signal.default_int_handler(signum, frame)  # nothing of the sweep's to save
        hurry()

    notice = _StopNotice(say, verbose, guard, callback, hurry)
    tune_log = logging.getLogger("ray.tune.tune")
    tune_log.addFilter(notice)
    previous_int = signal.signal(signal.SIGINT, again)
    previous_term = signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    try:
        yield guard
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
        tune_log.removeFilter(notice)


def best_completed(records: Any, metric: str, mode: str) -> tuple[float, str] | None:
    """``(last value, trial id)`` of the best completed trial, ranked as the report ranks."""
    done = [
        (r.last[metric], r.trial_id)
        for r in records
        if r.status is TrialStatus.COMPLETED
        and isinstance(r.last.get(metric), (int, float))
        and math.isfinite(r.last[metric])
    ]
    if not done:
        return None
    return min(done) if mode == "min" else max(done)


def publish_report(
    run_dir: Path, tracking_uri: str, parent_run_id: str | None
) -> tuple[Path | None, str | None]:
    """Build the report from the run's Parquet files and attach it to the MLflow parent run.

    Returns ``(report.md, None)``, or ``(None, why)``: a report that fails must not hide
    the sweep's results, which are all in the Parquet files (``abl report RUN`` retries).
    """
    from abl.results import build_report, load_run

    try:
        paths = build_report(run_dir)
        # the space's secondary metrics (report: [...]), each beside the main report
        space = load_run(run_dir).space
        extra = [build_report(run_dir, metric=m) for m in space.report if m != space.metric]
    except Exception as exc:  # reported to the user; results stay on disk
        return None, f"{type(exc).__name__}: {exc}"
    if parent_run_id:
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri)
            for built in (paths, *extra):
                for path in (built.markdown, built.html, built.importance):
                    client.log_artifact(parent_run_id, str(path), "report")
                for path in built.plots:
                    folder = path.parent.relative_to(run_dir).as_posix()
                    client.log_artifact(parent_run_id, str(path), f"report/{folder}")
            log_best(client, parent_run_id, run_dir)
        except Exception as exc:  # the tracking store may be down
            return paths.markdown, f"report not attached to MLflow ({error_line(exc)})"
    return paths.markdown, None


def log_best(client: Any, parent_run_id: str, run_dir: Path) -> None:
    """The best trial's scores on the parent run (``best/val/loss``), ranked as the report ranks
    (the last value of completed trials), and the trial counts: sweeps compare in the runs table."""
    import pandas as pd
    from mlflow.entities import Metric, RunTag

    from abl.results import load_run, split_trials, top_trials
    from abl.trainables.metrics import metric_mode

    data = load_run(run_dir)
    split = split_trials(data.trials, data.metric)
    now = int(time.time() * 1000)
    metrics = [Metric(f"trials/{k}", float(v), now, 0) for k, v in split.counts().items()]
    tags = []
    top = top_trials(data.trials, data.metric, data.space.mode, 1)
    if len(top):
        best = top.iloc[0]
        scores = [m for m in data.metrics if m == data.metric or metric_mode(m) is not None]
        metrics += [
            Metric(f"best/{m}", float(best[m]), now, 0) for m in scores if pd.notna(best.get(m))
        ]
        tags.append(RunTag("abl.best_trial", str(best["trial_id"])))
    client.log_batch(parent_run_id, metrics=metrics, tags=tags)
