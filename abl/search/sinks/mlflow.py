"""The MLflow sink: one parent run per sweep, one nested child run per trial.

Only :class:`mlflow.tracking.MlflowClient` is used, never the fluent API's global state, and
everything is batched: a run's params go with its first metrics, and a trial's last metrics
with its final tags. The calls run on one writer thread, in the order the hooks were called,
so the Tune driver loop never waits for the store (with SQLite, a trial's runs cost tens of
milliseconds of commits). When the tracking server does not answer, runs, metrics and
terminations stay pending and are retried on the next flush; the sweep goes on (Parquet has
every report anyway).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abl.redact import redact
from abl.results.store import HISTORY_KEY, PartWriter, TrialStatus
from abl.rundir import MLFLOW_JSON, TRIALS
from abl.search.sinks.base import Sink, SweepInfo, TrialRecord

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

# MLflow 3's UI opens an experiment of this kind in its classic "Model training" view (runs
# table, charts) instead of asking for a type or showing the GenAI tabs; older UIs ignore it.
EXPERIMENT_KIND, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
_MAX_PARAMS, _MAX_TAGS, _MAX_METRICS = 100, 100, 1000  # MLflow's log_batch limits...
_MAX_VALUES = 1000  # ...and on all three together
_MAX_PARAM_LEN, _MAX_TAG_LEN = 6000, 5000
_FAILED = {TrialStatus.ERRORED, TrialStatus.DIVERGED}
_LIVE = (TrialStatus.PENDING, TrialStatus.RUNNING)
_REPORT_KEYS = (*HISTORY_KEY, "time")  # the columns of a history row that are not metrics
# MLflow's HTTP client retries a dead server for minutes by default (7 retries, backoff 2 s,
# timeout 120 s), which would stall the Tune driver loop; the sink retries on its own.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    # MLflow prints two "View run ... at: URL" lines per run against a server (and fetches the
    # run to do it): abl's own lines say where the runs are.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


@dataclass
class _Child:
    """A trial's child run and what is not yet sent to it."""

    rec: TrialRecord
    run_id: str | None = None
    metrics: list[Metric] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)  # sent with the new run's first batch
    ended: bool = False
    once: set[str] = field(default_factory=set)  # metrics logged once per run, already sent
    # The steps the run has of each metric: a trial restored from a checkpoint older than its
    # last report reports those steps again, and MLflow would keep both values (Parquet keeps
    # one). ``found``: a run from before a resume, whose steps are fetched when first needed.
    had: dict[str, set[int]] = field(default_factory=dict)
    found: bool = False


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, else None."""
    prefix = "sqlite:///"  # then "/abs/x.db" (sqlite:////abs/x.db) or "rel/x.db"
    if not tracking_uri.startswith(prefix):
        return None
    db = tracking_uri[len(prefix) :].split("?")[0]
    return Path(db).resolve() if db and db != ":memory:" else None


def artifact_location(tracking_uri: str) -> str | None:
    """``<db dir>/mlartifacts`` as a file URI for a SQLite store, else None (server default)."""
    db = sqlite_file(tracking_uri)
    return (db.parent / "mlartifacts").as_uri() if db else None


_READY: set[str] = set()  # SQLite stores this process has made sure of


def ensure_store(tracking_uri: str) -> None:
    """Create a SQLite store's tables under a file lock before anything writes to it.

    MLflow creates the tables on a store's first use; two sweeps starting at once on a new
    file both try, and one fails with "table ... already exists". The lock makes the first
    one create them and the second find them. A new store is made under another name and
    then renamed into place: a driver killed while MLflow creates the tables (dozens of
    commits) leaves no half-made store that every later client would fail on the same way.
    Servers create their own tables.
    """
    db = sqlite_file(tracking_uri)
    if db is None or tracking_uri in _READY:
        return
    from filelock import FileLock
    from mlflow.tracking import MlflowClient

    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{db}.lock"):
        if not db.exists():
            new = db.with_name(f"{db.name}.new")
            for leftover in db.parent.glob(f"{new.name}*"):  # of a killed attempt
                leftover.unlink()
            _empty_store(new)
            os.replace(new, db)
        MlflowClient(tracking_uri).search_experiments(max_results=1)
    _READY.add(tracking_uri)


def _empty_store(path: Path) -> None:
    """A new, empty SQLite store at ``path``: a copy of this MLflow version's empty store,
    which abl keeps in its cache (``$XDG_CACHE_HOME/abl``, else ``~/.cache/abl``).

    MLflow makes a store's tables by running every one of its schema migrations, about 2 s
    of CPU on 2 cores that a new results root (every first sweep, every test) would spend
    while its first trials start; MLflow has no faster way, so abl does that once per MLflow
    version and copies the result. The copy's Default experiment gets the artifact location
    MLflow would have given it here (``./mlruns/0``, made absolute). Without a usable cache,
    MLflow makes the tables itself.
    """
    import sqlite3

    import mlflow
    from mlflow.tracking import MlflowClient

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "abl"
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    try:
        if not template.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            made = cache / f".{template.name}.{os.getpid()}"
            MlflowClient(f"sqlite:///{made}").search_experiments(max_results=1)
            os.replace(made, template)  # two processes making it at once: either one wins
        shutil.copyfile(template, path)
        now = int(time.time() * 1000)
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?, "
                "last_update_time = ? WHERE experiment_id = 0",
                (str(Path("mlruns").resolve() / "0"), now, now),
            )
    except (OSError, sqlite3.Error):  # no home, a read-only one, a damaged copy: the slow way
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        MlflowClient(f"sqlite:///{path}").search_experiments(max_results=1)


class MLflowSink(Sink):
    """Log the sweep to MLflow: params, metrics with steps, statuses, the space file.

    Hooks hand their work to a writer thread and return; ``close`` waits for it, and
    ``drain`` waits for what was handed over so far. ``background=False`` writes in the
    calling thread instead. A trial's run id is announced once its run is created or found.

    >>> MLflowSink(tracking_uri="sqlite:///abl-runs/mlflow.db")  # doctest: +SKIP
    """

    _transient = ("_client", "_writer")

    def __init__(
        self,
        *,
        tracking_uri: str,
        experiment: str | None = None,
        parent_run_id: str | None = None,
        retry_s: float = 30.0,
        background: bool = True,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.retry_s = retry_s  # while the store fails, try again at most this often
        self.background = background  # write on a thread of its own
        self.experiment = experiment  # default: the sweep's name
        self._parent_run_id = parent_run_id  # given: resume that parent run
        self._experiment_id: str | None = None
        self._sweep: SweepInfo | None = None
        self._client: MlflowClient | None = None
        self._children: dict[str, _Child] = {}  # trial id -> child run, while unfinished
        self._resumed = False  # an earlier session's runs exist: reuse trials' child runs
        self._opened = False
        self._retry_at = 0.0  # monotonic time of the next attempt while failing
        # Everything below the hooks runs on this one thread, which alone touches _children
        # and the client; hooks pass it snapshots of their records.
        self._writer: ThreadPoolExecutor | None = None
        self._flush_queued = False
        self._hurried = False  # a second Ctrl-C: close without one more try of a failing store
        self._stopped = False  # Tune took a Ctrl-C: the parent run ends KILLED, resumable

    @property
    def parent_run_id(self) -> str | None:
        """The sweep's parent run (None until the tracking server first answered)."""
        return self._parent_run_id

    @property
    def pending(self) -> int:
        """Trials whose runs are not yet complete in MLflow (``abl sync RUN`` sends them)."""
        if not self._opened:
            return self._sweep.total_trials or len(self._children) if self._sweep else 0
        return len(self._children)

    def open(self, sweep: SweepInfo) -> None:
        """Get or create the experiment and the parent run; retried on flush when it fails."""
        self._sweep, self._opened = sweep, False
        self._parent_run_id = self._parent_run_id or self._previous_parent(sweep)
        if not (sweep.run_dir / MLFLOW_JSON).exists():  # where to sync to, even if never opened
            self._write_json(sweep)
        self._submit(self._guard, "opening the MLflow experiment", self._open)

    def trial_started(self, rec: TrialRecord) -> None:
        """The trial's child run, with its config as params, is created on the next flush."""
        self._submit(self._started, replace(rec))

    def trial_result(
        self, rec: TrialRecord, step: int, metrics: dict[str, float], time: float
    ) -> None:
        """Buffer the report's metrics; they are sent on the next flush."""
        self._submit(self._result, replace(rec), step, metrics, time)

    def trial_ended(self, rec: TrialRecord) -> None:
        """Send the trial's metrics, tag its status and terminate its run."""
        self._submit(self._ended, replace(rec))

    def flush(self) -> None:
        """Send everything pending: runs not yet created, metrics, terminations."""
        if self._flush_queued:  # the writer is behind: one queued flush sends it all
            return
        self._flush_queued = True
        self._submit(self._flush)

    def close(self) -> None:
        """Flush, mark runs of unfinished trials KILLED, finish the parent run; then wait."""
        self._submit(self._finish)
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def stopping(self) -> None:
        """The sweep was stopped: its parent run ends KILLED (``--resume`` finishes it) even if
        every trial has ended."""
        self._stopped = True

    def hurry(self) -> None:
        """Close without trying once more a store that is failing: what it lacks stays
        pending, for ``abl sync`` (Parquet has it all)."""
        self._hurried = True

    def drain(self) -> None:
        """Wait until the writer thread has attempted everything handed to it so far."""
        if self._writer is not None:
            self._writer.submit(lambda: None).result()

    def _submit(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the writer thread (here when not ``background``); ``fn`` must
        not raise, since nobody waits on its result: the writers below go through ``_guard``."""
        if not self.background:
            fn(*args)
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="abl-mlflow")
        self._writer.submit(fn, *args)

    # The writer thread's side of each hook.

    def _started(self, rec: TrialRecord) -> None:
        # Its run is created on the next flush, or when it ends, whichever comes first: a
        # short trial's run then costs three calls (create, one batch, terminate).
        child = self._children.setdefault(rec.trial_id, _Child(rec))
        child.rec, child.ended = rec, False

    def _result(self, rec: TrialRecord, step: int, metrics: dict[str, float], time: float) -> None:
        from mlflow.entities import Metric

        child = self._children.setdefault(rec.trial_id, _Child(rec))
        ts = int(time * 1000)
        for key, value in metrics.items():
            if is_once(key):  # the same at every report (model/params): one point per run
                if key in child.once:
                    continue
                child.once.add(key)
            child.metrics.append(Metric(key, value, ts, step))

    def _ended(self, rec: TrialRecord) -> None:
        child = self._children.setdefault(rec.trial_id, _Child(rec))
        child.rec, child.ended = rec, True
        self._guard(f"ending trial {rec.trial_id}", self._sync, child)

    def _flush(self) -> None:
        self._flush_queued = False
        self._guard("flushing to MLflow", self._sync_all)

    def _finish(self) -> None:
        self._interrupted = self._stopped or any(not c.ended for c in self._children.values())
        for child in self._children.values():
            child.ended = True  # interrupted: terminated below as KILLED, resumable
        if not self._hurried:
            self._retry_at = 0.0  # last chance: try even while failing
        self._guard("closing the MLflow runs", self._close)

    def _guard(self, what: str, fn: Callable[..., object], *args: Any) -> None:
        """Run MLflow calls; on failure warn once, keep everything pending, back off.

        While the store fails, calls wait ``retry_s`` between attempts, so that a server that
        times out costs one timeout per ``retry_s``, not one per event (``close`` waits for
        the writer thread to go through them).
        """
        if self._failing and time.monotonic() < self._retry_at:
            return
        try:
            fn(*args)
        except Exception as exc:  # any transport or server error; the data stays pending
            self._retry_at = time.monotonic() + self.retry_s
            metrics = sum(len(c.metrics) for c in self._children.values())
            pending = f"{len(self._children)} trial runs with {metrics} metric values"
            self._io_failed(what, exc, pending)
        else:
            self._io_ok()

    def _mlflow(self) -> MlflowClient:
        """The client, created on first use (it does not survive pickling)."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            for name, value in _HTTP_DEFAULTS.items():  # ``abl sync`` comes here too
                os.environ.setdefault(name, value)

            ensure_store(self.tracking_uri)
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def _open(self) -> MlflowClient:
        """Connect and make sure the experiment and the parent run exist; idempotent."""
        client = self._mlflow()
        if self._opened:
            return client
        if self._sweep is None:
            raise RuntimeError("MLflowSink.open(sweep) must be called before trial events")
        sweep = self._sweep
        if self._experiment_id is None:
            self._experiment_id = self._get_experiment(client, sweep)
        if self._parent_run_id is None:
            tags = {"abl.run_dir": str(sweep.run_dir), "abl.sweep": sweep.name}
            run = client.create_run(self._experiment_id, run_name=sweep.run_dir.name, tags=tags)
            self._parent_run_id = run.info.run_id
            send_batches(client, self._parent_run_id, params=space_params(sweep.space_file))
        else:
            self._resumed = True
            client.update_run(self._parent_run_id, status="RUNNING")
        if sweep.space_file.is_file():
            client.log_artifact(self._parent_run_id, str(sweep.space_file))
        self._write_json(sweep)
        self._opened = True
        return client

    def _get_experiment(self, client: MlflowClient, sweep: SweepInfo) -> str:
        name = self.experiment or sweep.name
        exp = client.get_experiment_by_name(name)
        if exp is None:
            tags = {EXPERIMENT_KIND: TRAINING_KIND}
            return client.create_experiment(name, artifact_location(self.tracking_uri), tags)
        if EXPERIMENT_KIND not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, TRAINING_KIND)
        return exp.experiment_id

    def _previous_parent(self, sweep: SweepInfo) -> str | None:
        """The parent run recorded in the run dir by an earlier session of this sweep."""
        try:
            saved = json.loads((sweep.run_dir / MLFLOW_JSON).read_text())
        except (OSError, ValueError):
            return None
        if saved.get("tracking_uri") != redact(self.tracking_uri):
            return None
        return saved.get("parent_run_id") or None

    def _write_json(self, sweep: SweepInfo) -> None:
        info = {
            "tracking_uri": redact(self.tracking_uri),  # a password never lands in the run dir
            "experiment_id": self._experiment_id,
            "parent_run_id": self._parent_run_id,
        }
        sweep.run_dir.mkdir(parents=True, exist_ok=True)
        (sweep.run_dir / MLFLOW_JSON).write_text(json.dumps(info, indent=2) + "\n")

    def _sync_all(self) -> None:
        self._open()
        for child in list(self._children.values()):
            self._sync(child)

    def _sync(self, child: _Child) -> None:
        """Bring one child run up to date: create, send params and metrics, terminate if ended."""
        client = self._open()
        if child.run_id is None:
            run_id = self._run_of(client, child)
            if child.found:  # it runs again
                client.update_run(run_id, status="RUNNING")
            child.run_id = run_id
            if self.announce is not None:
                self.announce(child.rec.trial_id, run_id)
        child.metrics = _not_logged(client, child)
        pending = list(child.metrics)
        try:
            if child.ended:
                self._terminate(client, child)
            else:
                send_batches(client, child.run_id, params=child.params, metrics=child.metrics)
        finally:  # what was sent (it left the list) is in the run now
            left = {id(m) for m in child.metrics}
            for m in pending:
                if id(m) not in left:
                    child.had[m.key].add(m.step)

    def _run_of(self, client: MlflowClient, child: _Child) -> str:
        """The trial's run from before a resume (``child.found``: it keeps its params and
        metrics), else a new child run of the parent, tagged, its params pending in ``child``."""
        rec = child.rec
        if self._resumed:
            query = (
                f"tags.`mlflow.parentRunId` = '{self._parent_run_id}' "
                f"and tags.`abl.trial_id` = '{rec.trial_id}'"
            )
            runs = client.search_runs([self._experiment_id], query, max_results=1)
            if runs:
                child.found = True
                return runs[0].info.run_id
        child.found, child.params = False, trial_params(rec)
        tags = {
            "mlflow.parentRunId": self._parent_run_id,
            "abl.trial_id": rec.trial_id,
            "abl.status": rec.status.value,
        }
        start = int(rec.start * 1000)
        run = client.create_run(
            self._experiment_id, start_time=start, tags=tags, run_name=rec.trial_id
        )
        return run.info.run_id

    def _terminate(self, client: MlflowClient, child: _Child) -> None:
        """Send what is left with the final tags in one batch, then end the run."""
        from mlflow.entities import RunTag

        rec = child.rec
        done = rec.status not in _LIVE
        tags = [RunTag("abl.status", rec.status.value), RunTag("abl.node", rec.node)]
        if rec.error:
            tags.append(RunTag("abl.error", rec.error[:_MAX_TAG_LEN]))
        send_batches(client, child.run_id, params=child.params, metrics=child.metrics, tags=tags)
        status = "FAILED" if rec.status in _FAILED else "FINISHED" if done else "KILLED"
        end = int((rec.end or time.time()) * 1000)
        client.set_terminated(child.run_id, status=status, end_time=end)
        self._children.pop(rec.trial_id, None)

    def _close(self) -> None:
        self._sync_all()
        status = "KILLED" if getattr(self, "_interrupted", False) else "FINISHED"
        self._mlflow().set_terminated(self._parent_run_id, status=status)

    # ``abl sync``'s side: the Parquet stores are the record, MLflow gets what it lacks.

    def attach(self, sweep: SweepInfo, report: SyncReport) -> None:
        """Connect to the parent run ``sweep``'s ``mlflow.json`` names, writing only what the
        store lacks: the parent itself (as :meth:`open` makes it) if the store has no such
        run, else its space.yaml if it is missing. Calls run here; errors propagate."""
        from mlflow.exceptions import MlflowException

        self._sweep, client = sweep, self._mlflow()
        parent = self._previous_parent(sweep)
        try:
            self._experiment_id = client.get_run(parent).info.experiment_id if parent else None
        except MlflowException:  # a different store behind the same URI, or deleted
            parent = None
        if parent is None:
            self._open()  # the experiment, the parent run with its params and space.yaml
            report.parent_created = True
            return
        # Only what it lacks is written, so a sync with nothing to send changes nothing (not
        # its status, not its end time, not its artifacts).
        self._parent_run_id, self._opened, self._resumed = parent, True, True
        space = sweep.space_file
        if space.is_file() and not any(a.path == space.name for a in client.list_artifacts(parent)):
            client.log_artifact(parent, str(space))
            report.parent_changed = True

    def sync_trial(
        self, rec: TrialRecord, reports: list[dict[str, Any]], report: SyncReport
    ) -> str:
        """Send the trial's run (created with its params if missing) what it lacks of
        ``reports``, its history rows, and of its final status; returns the run's id."""
        client = self._mlflow()
        child = self._children[rec.trial_id] = _Child(rec)
        child.run_id = self._run_of(client, child)
        report.runs_created += not child.found
        for row in reports:
            metrics = {
                k: float(v) for k, v in row.items() if k not in _REPORT_KEYS and v is not None
            }
            self._result(rec, int(row["step"]), metrics, row["time"])
        child.metrics = _not_logged(client, child)
        report.values_sent += len(child.metrics)
        if rec.status not in _LIVE:
            run = client.get_run(child.run_id)
            tag = run.data.tags.get("abl.status")
            child.ended = run.info.status == "RUNNING" or tag != rec.status.value
            report.runs_terminated += child.ended
        self._sync(child)  # terminated (and forgotten) if it ended and MLflow lacked that
        self._children.pop(rec.trial_id, None)
        return child.run_id

    def end_parent(self, status: str, report: SyncReport) -> None:
        """End the parent run as ``status`` (``KILLED``: resumable) unless it is already."""
        client = self._mlflow()
        if client.get_run(self._parent_run_id).info.status != status:
            client.set_terminated(self._parent_run_id, status=status)
            report.parent_changed = True


def _not_logged(client: MlflowClient, child: _Child) -> list[Metric]:
    """The child's pending metrics less the (key, step) pairs its run has, less the
    once-per-run metrics it has at any step, and of a step pending twice the last only (as
    Parquet keeps it)."""
    had, seen, out = child.had, set(), []
    for m in reversed(child.metrics):
        if m.key not in had:
            fetch = child.found and child.run_id is not None
            steps = client.get_metric_history(child.run_id, m.key) if fetch else []
            had[m.key] = {h.step for h in steps}
        if (m.key, m.step) in seen or m.step in had[m.key] or (is_once(m.key) and had[m.key]):
            continue
        seen.add((m.key, m.step))
        out.append(m)
    return out[::-1]


def trial_params(rec: TrialRecord) -> list[Param]:
    """The trial's config as MLflow params (values cut to MLflow's length limit)."""
    from mlflow.entities import Param

    return [Param(k, param_text(v)[:_MAX_PARAM_LEN]) for k, v in rec.config.items()]


def param_text(value: Any) -> str:
    """A config value as the space file spells it: ``true``, ``null``, ``a,b`` for a list."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return ",".join(param_text(v) for v in value)
    return str(value)


def space_params(space_file: Path) -> list[Param]:
    """The sweep's definition as params of its parent run, so sweeps compare in the runs table:
    every fixed value, each grid axis as ``a,b,c``, the search and the ranking metric."""
    import yaml
    from mlflow.entities import Param

    try:
        raw = yaml.safe_load(space_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    search = raw.get("search") if isinstance(raw.get("search"), dict) else {}
    flat: dict[str, Any] = {
        "trainable": raw.get("trainable"),
        "metric": raw.get("metric", "val/loss"),
        "mode": raw.get("mode", "min"),
        "repeats": raw.get("repeats", 1),
        "search.algorithm": search.get("algorithm", "grid"),
    }
    for section in ("fixed", "grid"):
        if isinstance(raw.get(section), dict):
            flat.update(raw[section])
    return [Param(k, param_text(v)[:_MAX_PARAM_LEN]) for k, v in flat.items() if v is not None]


def is_once(metric: str) -> bool:
    """Whether a metric is the same at every report of a trial (logged once per run)."""
    from abl.trainables.metrics import metric_info

    info = metric_info(metric)
    return info is not None and info.once


def send_batches(
    client: MlflowClient,
    run_id: str,
    *,
    params: list[Param] | None = None,
    metrics: list[Metric] | None = None,
    tags: list[RunTag] | None = None,
) -> None:
    """``log_batch`` as few times as MLflow's limits allow; what is sent leaves the lists, so
    a call that fails leaves the rest pending."""
    params, metrics, tags = params or [], metrics or [], tags or []
    while params or metrics or tags:
        p, t = params[:_MAX_PARAMS], tags[:_MAX_TAGS]
        m = metrics[: min(_MAX_METRICS, _MAX_VALUES - len(p) - len(t))]
        client.log_batch(run_id, metrics=m, params=p, tags=t)
        del params[: len(p)], metrics[: len(m)], tags[: len(t)]


@dataclass
class SyncReport:
    """What ``abl sync`` sent: zero everywhere when MLflow already had everything."""

    parent_created: bool = False
    runs_created: int = 0
    values_sent: int = 0
    runs_terminated: int = 0
    trials: int = 0
    parent_changed: bool = False  # its space.yaml artifact or its status was missing or stale
    run_ids_filled: int = 0  # trials.parquet rows given the child run id they lacked

    @property
    def changed(self) -> bool:
        """Whether anything was written to MLflow."""
        return bool(
            self.parent_created
            or self.parent_changed
            or self.runs_created
            or self.values_sent
            or self.runs_terminated
        )


# Columns of a trials row that are not the trial's config (see parquet.trial_row).
_ROW_COLUMNS = frozenset(
    ("trial_id", "status", "start", "end", "wall_s", "paused_s", "node", "error", "steps", "mlflow_run_id",
     "seed", "best_step")
)  # fmt: skip


def sync_run(
    sweep: SweepInfo, trials: list[dict[str, Any]], history: list[dict[str, Any]]
) -> SyncReport:
    """Push to MLflow exactly what it lacks of a run directory's Parquet stores; idempotent.

    The parent run is the one in ``mlflow.json`` (created if MLflow never saw it), each trial's
    child run is found by its ``abl.trial_id`` tag (created with its params if missing), and
    only the (metric, step) pairs a child run does not have are logged; trials rows that lack
    their child run's id get it. A sync with nothing to send writes nothing. Errors propagate:
    a sync that cannot reach the store says so.
    """
    from abl.search.sinks.parquet import prior_records

    report = SyncReport(trials=len(trials))
    sink = MLflowSink(tracking_uri=sweep.tracking_uri)
    sink.attach(sweep, report)
    records = prior_records(sweep.run_dir, sweep.metric, sweep.mode)
    reports: dict[str, list[dict[str, Any]]] = {}
    for row in history:
        reports.setdefault(row["trial_id"], []).append(row)
    finished = 0
    unrecorded: list[dict[str, Any]] = []  # trials rows without their child run's id
    for row in trials:
        rec = records.get(row.get("trial_id") or "")
        if rec is None:
            continue
        metric_names = {k for r in reports.get(rec.trial_id, []) for k in r} - {*_REPORT_KEYS}
        rec.config = {
            k: v
            for k, v in row.items()
            if k not in _ROW_COLUMNS
            and k not in metric_names
            and not k.startswith("best/")
            and v is not None
        }
        run_id = sink.sync_trial(rec, reports.get(rec.trial_id, []), report)
        if row.get("mlflow_run_id") != run_id:
            unrecorded.append({**row, "mlflow_run_id": run_id})
        finished += rec.status not in _LIVE
    sink.end_parent("FINISHED" if finished == len(trials) else "KILLED", report)
    if unrecorded:
        store = PartWriter(sweep.run_dir / TRIALS)
        store.append(unrecorded)
        store.compact(key="trial_id")
        report.run_ids_filled = len(unrecorded)
    return report
