"""Sinks: where a sweep's trials go as they run (MLflow, Parquet, the terminal).

A sink sees plain records, never Ray objects; :class:`SinkCallback` is the one piece that
speaks Ray Tune and translates its events. Every hook of :class:`Sink` is a no-op by default,
so a sink implements only what it needs (:class:`abl.search.sinks.ParquetSink` is the
reference implementation)::

    sweep = SweepInfo(name="bigram-pe", run_dir=run_dir, metric="val/loss", mode="min",
                      space_file=run_dir / "space.yaml", total_trials=12,
                      tracking_uri="sqlite:///mlflow.db")
    callback = SinkCallback([MLflowSink(tracking_uri=sweep.tracking_uri), ParquetSink()], sweep)
    tune.Tuner(train, run_config=tune.RunConfig(callbacks=[callback])).fit()

A sink never raises out of a hook because its own store failed (a dead tracking server must
not kill a sweep): it keeps the data pending, warns once, and retries on the next flush.
"""

from __future__ import annotations

import math
import numbers
import re
import signal
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ray.tune import Callback

from abl.errors import AblWarning, error_line
from abl.redact import redact_text
from abl.results.store import TrialStatus
from abl.search.disk import DiskFullLog, StateKeeper, is_disk_full
from abl.trainables.metrics import STEP_KEY

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

STATUS_KEY = "trial/status"  # the trainable's last report: "completed" or "diverged"
_SETTLED = (TrialStatus.COMPLETED, TrialStatus.DIVERGED, TrialStatus.PRUNED)
PRUNED_MARK = "abl_pruned"  # set on a Trial by abl's ASHA when it stops the trial early

# Keys Ray adds to every result; they are not metrics.
# fmt: off
RAY_KEYS = frozenset((
    "done", "training_iteration", "trial_id", "timestamp", "date", "time_this_iter_s",
    "time_total_s", "time_since_restore", "iterations_since_restore", "pid", "hostname",
    "node_ip", "config", "experiment_tag", "checkpoint_dir_name", "should_checkpoint",
))
# fmt: on
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class SweepInfo:
    """What every sink needs to know about the sweep."""

    name: str  # sweep name; the MLflow experiment defaults to it
    run_dir: Path  # abl-runs/<name>/<timestamp>
    metric: str  # the metric that ranks trials, e.g. "val/loss"
    mode: Literal["min", "max"]  # whether lower or higher `metric` is better
    space_file: Path  # the resolved space.yaml inside run_dir
    total_trials: int | None  # None when unknown (e.g. open-ended random search)
    tracking_uri: str  # MLflow tracking URI, e.g. "sqlite:///abl-runs/mlflow.db"
    ended_before: int = 0  # trials that ended before this session (a resumed sweep)
    # Adaptive seeds: total_trials is only the most (the sweep ends once its comparisons are
    # decided, and the trials not started then are not unfinished).
    adaptive: bool = False
    # Tune snapshots its state at every step (abl.search.engine.snapshot_period).
    snapshots_every_step: bool = False
    best_before: tuple[float, str] | None = None  # (last metric value, trial id) of those


@dataclass
class TrialRecord:
    """One trial as the sinks see it; the Parquet trials row is built from it."""

    trial_id: str  # Ray's trial id
    config: dict[str, Any]  # flat trial config, dotted keys ("model.pe_type")
    status: TrialStatus
    start: float  # unix seconds
    end: float | None = None  # unix seconds, once ended
    node: str = ""  # host the trial ran on
    error: str | None = None  # one summary line, then the error text
    steps: int = 0  # the last step reported (reports received, each step counted once)
    last: dict[str, float] = field(default_factory=dict)  # last value of each metric
    best: float | None = None  # best value of the sweep's ranking metric
    best_step: int | None = None  # step at which `best` was reported
    mlflow_run_id: str | None = None  # its MLflow run as trials.parquet had it (a resumed trial)
    paused_s: float = 0.0  # seconds it could not run: from a killed driver's last word to a resume
    seen: float | None = None  # unix seconds of the last report (or start) a driver saw

    @property
    def wall_s(self) -> float | None:
        """Seconds the trial ran, once ended: start to end, less the time the driver was dead."""
        return None if self.end is None else self.end - self.start - self.paused_s

    def update(self, step: int, metrics: dict[str, float], metric: str, mode: str) -> None:
        """Count step ``step``, remember each metric's last value, track the best ``metric``."""
        # A step counts once: a trial resumed from a checkpoint reports the steps after it again.
        self.steps = max(self.steps, step)
        self.last.update(metrics)
        value = metrics.get(metric)
        if value is None or math.isnan(value):
            return
        if self.best is None or (value < self.best if mode == "min" else value > self.best):
            self.best, self.best_step = value, step


class Sink:
    """Base class of sinks: every hook is a no-op; override the ones you need.

    Hooks are called from the Tune driver loop, one at a time, in this order per trial:
    ``trial_started``, ``trial_result``..., ``trial_ended`` (with ``trial_retried`` and
    ``trial_started`` again between reports when a failed trial is retried); ``open`` before
    any of them, ``flush`` every few seconds, ``close`` once at the end; ``trial_linked``
    whenever a sink announced a trial's MLflow run, even after ``close``. Runtime state
    (clients, files, consoles) must be created in ``open``: Ray pickles its callbacks, and
    therefore the sinks, when the Tuner is built. Attributes named in ``_transient`` are
    dropped when pickled.
    """

    _transient: ClassVar[tuple[str, ...]] = ()
    # Tells every sink of the sweep that a trial has an MLflow run, from any thread: set to
    # SinkCallback.link by the callback; a sink alone has nobody to tell.
    announce: Callable[[str, str], None] | None = None
    disk_full: str | None = None  # what failed for lack of space: the sweep stops (see _io_failed)
    _failing = False  # an outage was warned of; the next success ends it

    def open(self, sweep: SweepInfo) -> None:
        """Prepare the store for ``sweep``; called once before any trial event."""

    def trial_started(self, rec: TrialRecord) -> None:
        """A trial started (or restarted after a pause or a recovered failure)."""

    def trial_result(
        self, rec: TrialRecord, step: int, metrics: dict[str, float], time: float
    ) -> None:
        """A trial reported ``metrics`` at ``step``; ``rec`` is already updated."""

    def trial_retried(self, rec: TrialRecord, error: str) -> None:
        """A trial failed and runs again from its last checkpoint (``max_failures`` allows it);
        ``error`` is a summary line, then the failure's text."""

    def trial_ended(self, rec: TrialRecord) -> None:
        """A trial ended; ``rec.status`` and ``rec.end`` are final."""

    def trial_linked(self, trial_id: str, run_id: str) -> None:
        """Trial ``trial_id`` has MLflow run ``run_id`` (announced by the MLflow sink once it
        created or found the run): before, between or after the trial's other hooks."""

    def flush(self) -> None:
        """Write what is buffered; retry what failed before."""

    def stopping(self) -> None:
        """Tune took a Ctrl-C (or SIGTERM): the sweep ends short of its report, even if every
        trial has ended by now, and ``--resume`` finishes it. Called from a signal handler:
        set a flag, nothing more."""

    def hurry(self) -> None:
        """The user asked again to stop (a second Ctrl-C) while the sweep stops: ``close`` is
        still called and must still write what only it writes, but may skip what can be sent
        later (a retry of a store that is not answering). Called from a signal handler: set a
        flag, nothing more."""

    def close(self) -> None:
        """Flush and release the store; called once when the sweep ends."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in self._transient:
            if name in state:
                state[name] = None
        return state

    def _io_failed(self, what: str, exc: BaseException, pending: str) -> None:
        """Warn once per outage that ``what`` failed and what is kept pending.

        A full disk is no outage to wait out: it is recorded in ``disk_full`` (the sweep stops
        and says so in one line), without a warning.
        """
        if is_disk_full(exc):
            if self.disk_full is None:
                self.disk_full = f"{what}: {type(exc).__name__}: {exc}"
            return
        if self._failing:
            return
        self._failing = True
        warnings.warn(
            redact_text(
                f"{type(self).__name__}: {what} failed ({error_line(exc)}); "
                f"keeping {pending} pending, will retry on flush"
            ),
            AblWarning,
            stacklevel=3,
        )

    def _io_ok(self) -> None:
        """The store answered again: the next failure warns again."""
        self._failing = False


class SinkCallback(Callback):
    """Translate Ray Tune's driver events into :class:`Sink` calls, in list order.

    The order does not change what the stores get: a run id a sink announces (:meth:`link`)
    reaches every sink before its next hook, and after the last close. Sinks are opened in
    ``setup``, flushed every ``flush_every_s`` seconds, and flushed and closed when the
    experiment ends (``hurry`` passes a second Ctrl-C on to them).
    ``config_of`` maps Tune's trial config to the full flat config the sinks record (defaults
    and seed filled in); it is pickled with the callback, so it must be picklable.
    """

    def __init__(
        self,
        sinks: list[Sink],
        sweep: SweepInfo,
        *,
        flush_every_s: float = 2.0,
        config_of: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        prior: dict[str, TrialRecord] | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.sweep = sweep
        self.flush_every_s = flush_every_s
        self.config_of = config_of
        # A resumed sweep's trials as its Parquet store left them: a trial that runs on keeps
        # its start time, steps and best value (see abl.search.sinks.parquet.prior_records).
        self._prior = dict(prior or {})
        self._settled: set[str] = set()  # prior trials that ended, restarted by Tune, silent
        self._records: dict[str, TrialRecord] = {}
        self._final: dict[str, str] = {}  # trial id -> its last reported "trial/status"
        self._member_done: set[str] = set()  # pack members that ended before their pack did
        self._links: deque[tuple[str, str]] = deque()  # (trial id, run id) not yet told
        for sink in self.sinks:
            sink.announce = self.link
        self._opened = False
        self._closed = False
        self._last_flush = 0.0
        # The first write that failed for lack of space, if one did: the sweep stops there.
        self.disk_full: str | None = None
        self._disk_failed: set[str] = set()  # trials that failed only because the disk is full
        self._disk_log = DiskFullLog()
        # Tune snapshots before on_step_end and copies the files here on a thread of its own;
        # when at every step, they never sit unchanged for the usual settling time (a set is
        # kept only when complete and unchanged while it was copied).
        settle_s = 0.0 if sweep.snapshots_every_step else 0.5
        self._state = StateKeeper(sweep.run_dir / "tune", settle_s=settle_s)
        # Called once, with the sweep's first report (a module-level function: Tune pickles
        # its callbacks with the Tuner).
        self.at_first_result: Callable[[], object] | None = None

    def setup(self, stop: Any = None, num_samples: int | None = None, **info: Any) -> None:
        """Open the sinks; the total trial count comes from Tune when the sweep lacks it."""
        total = info.get("total_num_samples")
        if self.sweep.total_trials is None and isinstance(total, int) and total > 0:
            self.sweep = replace(self.sweep, total_trials=total)
        self._disk_log.install()
        self._open()

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """A trial's actor started: a new record, or the same one restarted (each member's,
        for a pack)."""
        for one in self._members(trial, live=True):
            self._started(one)

    def _started(self, trial: Any) -> None:
        rec = self._records.get(trial.trial_id)
        if rec is None or trial.trial_id in self._settled:
            self._record(trial)
            return
        rec.status, rec.end, rec.error = TrialStatus.RUNNING, None, None
        self._each(lambda sink: sink.trial_started(rec))

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        """Forward the numeric metrics of one report (a pack's: each member's, and a member
        that said it is done, completed or diverged, ends there)."""
        if self.at_first_result is not None:
            hook, self.at_first_result = self.at_first_result, None
            hook()
        from abl.search.packs import member_results

        results = member_results(result) if self._members_of(trial) is not None else None
        if results is None:
            self._result(trial, result)
            return
        for one in self._members(trial, live=True):
            own = results.get(one.index)
            if own is None:
                continue
            self._result(one, own)
            if isinstance(own.get(STATUS_KEY), str):
                self._member_done.add(one.trial_id)
                self._completed(one)

    def _result(self, trial: Any, result: dict) -> None:
        rec = self._record(trial)
        if trial.trial_id in self._settled:  # it had more to run after all
            self._settled.discard(trial.trial_id)
            rec.status, rec.end, rec.error = TrialStatus.RUNNING, None, None
            self._each(lambda sink: sink.trial_started(rec))
        if isinstance(result.get(STATUS_KEY), str):
            self._final[trial.trial_id] = result[STATUS_KEY]
        rec.node = str(result.get("hostname") or result.get("node_ip") or rec.node)
        step = report_step(result, rec.steps + 1)
        metrics = numeric_metrics(result)
        rec.update(step, metrics, self.sweep.metric, self.sweep.mode)
        now = time.time()
        self._each(lambda sink: sink.trial_result(rec, step, metrics, now))

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """The trial stopped: completed or diverged as it said, pruned if the scheduler said.

        A trainable that never says (a custom function) is completed unless the scheduler
        marked the trial (:data:`PRUNED_MARK`) when it stopped it early. A pack's members that
        had not ended yet end with it.
        """
        for one in self._members(trial, live=True):
            self._completed(one)

    def _completed(self, trial: Any) -> None:
        final = self._final.get(trial.trial_id)
        status = {s.value: s for s in _SETTLED}  # a pack member's may say pruned
        pruned = getattr(trial, PRUNED_MARK, False)
        unsaid = TrialStatus.PRUNED if pruned else TrialStatus.COMPLETED
        self._end(trial, TrialStatus.PRUNED if pruned else status.get(final or "", unsaid))

    def on_trial_recover(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """The trainable raised and Tune will run it again from its last checkpoint."""
        for one in self._members(trial, live=True):
            self._recovered(one)

    def _recovered(self, trial: Any) -> None:
        error = trial_error(trial)
        if is_disk_full(error):  # its checkpoint could not be written: not the trial's fault
            self._record(trial)
            self._stop_for_disk(f"trial {trial.trial_id}: {error.splitlines()[0]}")
            return
        rec = self._record(trial)
        self._each(lambda sink: sink.trial_retried(rec, error))

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """The trainable raised (and will not be retried).

        A trial that failed because the disk is full stays unfinished (its last row says
        ``running``): the sweep stops, and ``--resume`` continues it from its checkpoint.
        """
        for one in self._members(trial, live=True):
            self._errored(one)

    def _errored(self, trial: Any) -> None:
        error = trial_error(trial)
        if is_disk_full(error):
            self._record(trial)
            self._disk_failed.add(trial.trial_id)
            self._stop_for_disk(f"trial {trial.trial_id}: {error.splitlines()[0]}")
            return
        self._end(trial, TrialStatus.ERRORED, error)

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        """Flush the sinks every ``flush_every_s`` seconds, and keep a copy of Tune's state."""
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self._flush()
            self._state.keep()
        if self._disk_log.seen is not None:  # Tune's snapshot or MLflow's store, on a thread
            self._stop_for_disk(self._disk_log.seen)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        """Flush and close every sink, once."""
        if self._closed:
            return
        self._closed = True
        self._open()
        self._flush()
        self._each(lambda sink: sink.close())
        if self._disk_log.seen is not None and self.disk_full is None:
            self.disk_full = self._disk_log.seen
        if self.disk_full is not None and self._disk_log.seen is None:
            self._disk_log.seen = self.disk_full  # keeps Ray's late reports of it quiet
        self._disk_log.remove()

    @property
    def opened(self) -> bool:
        """Whether Tune has set the sinks up (its experiment started)."""
        return self._opened

    def stopping(self) -> None:
        """Tell every sink that Tune took a Ctrl-C (see :meth:`Sink.stopping`)."""
        for sink in self.sinks:
            sink.stopping()

    def hurry(self) -> None:
        """Tell every sink that the user asked again to stop (see :meth:`Sink.hurry`)."""
        for sink in self.sinks:
            sink.hurry()

    def link(self, trial_id: str, run_id: str) -> None:
        """Tell every sink that trial ``trial_id`` has MLflow run ``run_id``, from any thread
        (a deque's append is atomic); they hear of it on the driver thread, before their next hook."""
        self._links.append((trial_id, run_id))

    def unfinished(self) -> int:
        """Trials of the sweep that have not ended (all of them until the sweep has run)."""
        known = {**self._prior, **self._records}
        ended = sum(
            r.status not in (TrialStatus.PENDING, TrialStatus.RUNNING) for r in known.values()
        )
        total = len(known) if self.sweep.adaptive else max(self.sweep.total_trials or 0, len(known))
        return total - ended

    def _open(self) -> None:
        if not self._opened:
            self._opened = True
            self._each(lambda sink: sink.open(self.sweep))

    def _flush(self) -> None:
        self._last_flush = time.monotonic()
        self._each(lambda sink: sink.flush())

    def _each(self, hook: Callable[[Sink], None]) -> None:
        """Call ``hook`` on every sink in list order, telling each first of the runs linked
        since its last call (while an earlier sink closed, say), and all of them after."""
        self._open()
        for sink in self.sinks:
            self._tell_links()
            hook(sink)
        self._tell_links()
        self._check_sinks()

    def _tell_links(self) -> None:
        while self._links:  # the driver thread alone takes from it
            trial_id, run_id = self._links.popleft()
            for sink in self.sinks:
                sink.trial_linked(trial_id, run_id)

    def _check_sinks(self) -> None:
        """Stop the sweep if a sink found the disk full (MLflow's writer thread too)."""
        full = next((sink.disk_full for sink in self.sinks if sink.disk_full), None)
        if full:
            self._stop_for_disk(full)

    def _stop_for_disk(self, what: str) -> None:
        """Stop the sweep as Ctrl-C does, once: Tune saves its state, the sinks flush (what
        still fits), and the trials that are left stay resumable.

        Tune's SIGINT handler, raised here on the driver's main thread, stops it between two
        steps. Without it (the Tuner runs off the main thread, or has stopped already and
        restored Python's handler) nothing is raised: a KeyboardInterrupt would cut the
        sweep's own ending short.
        """
        if self.disk_full is not None:
            return
        self.disk_full = redact_text(what)
        handler = signal.getsignal(signal.SIGINT)
        tune_handler = callable(handler) and handler is not signal.default_int_handler
        if tune_handler and threading.current_thread() is threading.main_thread():
            signal.raise_signal(signal.SIGINT)

    def _members_of(self, trial: Trial) -> list[dict[str, Any]] | None:
        from abl.search.packs import members_of

        config = getattr(trial, "config", None)
        return members_of(config) if isinstance(config, dict) else None

    def _members(self, trial: Trial, *, live: bool) -> list[Any]:
        """``[trial]``, or a pack trial's members (those that have not ended, if ``live``)."""
        configs = self._members_of(trial)
        if configs is None:
            return [trial]
        members = [PackMember(trial, i, c) for i, c in enumerate(configs)]
        return [m for m in members if not live or m.trial_id not in self._member_done]

    def _record(self, trial: Trial) -> TrialRecord:
        """The trial's record; a trial first seen now is started first."""
        rec = self._records.get(trial.trial_id)
        if rec is None:
            rec = self._prior.pop(trial.trial_id, None)
            if rec is not None and rec.status in _SETTLED:
                # Ended after Tune's last snapshot: Tune restarts it from its last checkpoint,
                # which usually has nothing left to run. It stays as it ended unless it reports.
                rec.config = self._config(trial)
                self._records[trial.trial_id] = rec
                self._settled.add(trial.trial_id)
                return rec
            if rec is None:
                rec = TrialRecord(trial.trial_id, {}, TrialStatus.RUNNING, start=time.time())
            else:  # a trial of an interrupted session goes on: its time away is not its wall time
                rec.paused_s += max(0.0, time.time() - (rec.seen or rec.start))
            rec.config = self._config(trial)
            rec.status, rec.end, rec.error = TrialStatus.RUNNING, None, None
            self._records[trial.trial_id] = rec
            self._each(lambda sink: sink.trial_started(rec))
        return rec

    def _config(self, trial: Trial) -> dict[str, Any]:
        config = dict(trial.config)
        if self.config_of is None:
            return config
        try:
            return dict(self.config_of(config))
        except Exception as exc:  # the trial itself will fail on it and record why
            warnings.warn(
                f"trial {trial.trial_id}: recording its config as given, since completing it "
                f"failed ({type(exc).__name__}: {exc})",
                AblWarning,
                stacklevel=2,
            )
            return config

    def _end(self, trial: Trial, status: TrialStatus, error: str | None = None) -> None:
        rec = self._record(trial)
        if trial.trial_id in self._settled:
            return  # restarted, reported nothing, stopped: it ended before, as recorded
        rec.status, rec.end, rec.error = status, time.time(), error
        self._each(lambda sink: sink.trial_ended(rec))


class PackMember:
    """One member of a pack trial (:mod:`abl.search.packs`), as the hooks see a trial: its own
    id and config; anything else (node, error, the scheduler's marks) is its pack's."""

    def __init__(self, pack: Trial, index: int, config: dict[str, Any]) -> None:
        from abl.search.packs import member_id

        self.pack = pack
        self.index = index
        self.trial_id = member_id(pack.trial_id, index)
        self.config = config

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pack, name)


def report_step(result: dict[str, Any], count: int) -> int:
    """The step of one report: the trainable's own (:data:`STEP_KEY`), else Tune's count of the
    trial's reports (``training_iteration``), else ``count``."""
    own = result.get(STEP_KEY)
    if isinstance(own, numbers.Real) and not isinstance(own, bool) and math.isfinite(own):
        return int(own)
    return int(result.get("training_iteration") or count)


def numeric_metrics(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric metrics of a Tune result as floats; nested dicts join keys with ``/``."""
    out: dict[str, float] = {}
    for key, value in result.items():
        if not prefix and (key in RAY_KEYS or key == STEP_KEY):
            continue
        if isinstance(value, dict):
            out.update(numeric_metrics(value, f"{prefix}{key}/"))
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def trial_error(trial: Trial) -> str:
    """One summary line (``ValueError: boom``), then the text of the trial's last failure."""
    from abl.search.raycompat import trial_error_cause, trial_error_text

    body = _ANSI.sub("", trial_error_text(trial)).strip()
    cause = trial_error_cause(trial)
    if cause is not None:
        detail = str(cause).strip().splitlines()
        summary = type(cause).__name__ + (f": {detail[0]}" if detail else "")
    else:
        lines = [ln for ln in body.splitlines() if ln.strip()]
        summary = lines[-1].strip() if lines else "trial failed (no error text from Ray)"
    return f"{summary}\n{body}" if body else summary
