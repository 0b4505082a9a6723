"""The Parquet sink: the run directory's ``trials.parquet`` and ``history.parquet``.

The reference sink: a trial row is appended when a trial starts (status ``running``) and when
it ends (final), reports are buffered and appended on every flush, and ``close`` compacts
both stores. A trial's MLflow run id, announced whenever the MLflow sink has it, goes into
every row of the trial written after, and a newer row of a trial written before (after the
close too). A report can be rebuilt from these files alone (``abl report RUN``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from abl.results.store import (
    HISTORY,
    HISTORY_KEY,
    TRIALS,
    PartWriter,
    TrialStatus,
    read_history,
    read_trials,
)
from abl.search.sinks.base import Sink, SweepInfo, TrialRecord, numeric_metrics, report_step

_SEED_KEYS = ("seed", "train.seed")


def trial_row(rec: TrialRecord, metric: str, run_id: str | None = None) -> dict[str, Any]:
    """The trials row of ``rec``: fixed columns, config, last metrics, best of ``metric``; its
    MLflow run is ``run_id``, else the one it had."""
    row: dict[str, Any] = {
        "trial_id": rec.trial_id,
        "status": rec.status.value,
        "start": rec.start,
        "end": rec.end,
        "wall_s": rec.wall_s,
        "paused_s": rec.paused_s,
        "node": rec.node,
        "error": rec.error,
        "steps": rec.steps,
        "mlflow_run_id": run_id or rec.mlflow_run_id,
        "seed": _seed(rec),
    }
    row.update({k: _scalar(v) for k, v in rec.config.items()})
    row.update(rec.last)
    row[f"best/{metric}"] = rec.best
    row["best_step"] = rec.best_step
    return row


def _seed(rec: TrialRecord) -> int | None:
    """The trial's seed: config ``seed`` or ``train.seed``."""
    for value in [rec.config.get(k) for k in _SEED_KEYS]:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _scalar(value: Any) -> Any:
    """Config values as Parquet scalars: lists, dicts and other objects become JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, default=str, sort_keys=True)


class ParquetSink(Sink):
    """Stream trials and reports into the run directory's Parquet stores."""

    def __init__(self) -> None:
        self._metric = ""
        self._trials: PartWriter | None = None
        self._history: PartWriter | None = None
        self._pending_trials: list[dict[str, Any]] = []
        self._pending_history: list[dict[str, Any]] = []
        self._written: dict[str, TrialRecord] = {}  # trial id -> its record, once it has a row
        self._run_ids: dict[str, str] = {}  # trial id -> its MLflow run, as announced
        self._closed = False

    def open(self, sweep: SweepInfo) -> None:
        """Point the writers at ``sweep.run_dir``; existing parts are kept (resume)."""
        self._metric = sweep.metric
        self._trials = PartWriter(sweep.run_dir / TRIALS)
        self._history = PartWriter(sweep.run_dir / HISTORY)

    def trial_started(self, rec: TrialRecord) -> None:
        """Write the trial's row with status ``running`` now."""
        self._add_row(rec)
        self._write()

    def trial_result(
        self, rec: TrialRecord, step: int, metrics: dict[str, float], time: float
    ) -> None:
        """Buffer one history row; it is written on the next flush."""
        self._pending_history.append(
            {"trial_id": rec.trial_id, "step": step, "time": time, **metrics}
        )

    def trial_ended(self, rec: TrialRecord) -> None:
        """Write the trial's final row now."""
        self._add_row(rec)
        self._write()

    def trial_linked(self, trial_id: str, run_id: str) -> None:
        """Note the trial's run id; a trial with a row gets a newer one, on the next flush (now
        and compacted again, after the close)."""
        self._run_ids[trial_id] = run_id
        rec = self._written.get(trial_id)
        if rec is not None:
            self._add_row(rec)
            if self._closed:
                self.close()

    def flush(self) -> None:
        """Append buffered history, and any trial rows not written yet."""
        self._write(history=True)

    def close(self) -> None:
        """Flush, then compact both stores into one part each."""
        self._closed = True
        self.flush()
        if self._trials is None or self._history is None or self._pending_trials:
            return  # never opened, or the disk is failing: leave the parts as they are
        try:
            self._trials.compact(key="trial_id")
            self._history.compact(key=HISTORY_KEY)
        except OSError as exc:
            self._io_failed("compacting the Parquet stores", exc, "nothing (all parts kept)")

    def _add_row(self, rec: TrialRecord) -> None:
        self._pending_trials.append(trial_row(rec, self._metric, self._run_ids.get(rec.trial_id)))
        self._written[rec.trial_id] = rec

    def _write(self, *, history: bool = False) -> None:
        if self._trials is None or self._history is None:
            return
        try:
            self._trials.append(self._pending_trials)
            self._pending_trials = []
            if history:
                self._history.append(self._pending_history)
                self._pending_history = []
        except OSError as exc:
            pending = (
                f"{len(self._pending_trials)} trial rows, {len(self._pending_history)} reports"
            )
            self._io_failed(f"writing to {self._trials.path.parent}", exc, pending)
        else:
            self._io_ok()


def prior_records(run_dir: Path, metric: str, mode: str) -> dict[str, TrialRecord]:
    """The trials of an interrupted sweep as its Parquet stores left them, for ``--resume``.

    Parquet, not Tune's experiment snapshot, is the record: the driver writes a trial's rows
    the moment it starts and ends, while Tune snapshots its state every few seconds. Steps,
    last values and the best ``metric`` are recomputed from the history. The configs are left
    empty: the callback fills them from Tune's trials.
    """
    records: dict[str, TrialRecord] = {}
    for row in read_trials(run_dir).to_pylist():
        trial_id = row.get("trial_id")
        if not trial_id:
            continue
        try:
            status = TrialStatus(row.get("status"))
        except ValueError:
            status = TrialStatus.RUNNING
        rec = TrialRecord(
            trial_id=trial_id,
            config={},
            status=status,
            start=float(row.get("start") or 0.0),
            end=row.get("end"),
            node=row.get("node") or "",
            error=row.get("error"),
            paused_s=float(row.get("paused_s") or 0.0),
            mlflow_run_id=row.get("mlflow_run_id") or None,
        )
        rec.seen = rec.start
        records[trial_id] = rec
    history = read_history(run_dir)
    if history.num_rows == 0 or "trial_id" not in history.column_names:
        return records
    skip = {*HISTORY_KEY, "time"}
    for report in history.sort_by([("trial_id", "ascending"), ("step", "ascending")]).to_pylist():
        rec = records.get(report["trial_id"])
        if rec is None:
            continue
        metrics = {
            k: float(v)
            for k, v in report.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        rec.update(int(report["step"]), metrics, metric, mode)
        if isinstance(report.get("time"), (int, float)):
            rec.seen = max(rec.seen or 0.0, float(report["time"]))
    return records


def recover_reports(run_dir: Path, tune_dir: Path) -> int:
    """Append to history the reports a killed driver received but had not flushed yet.

    Reports reach ``history.parquet`` every few seconds; Tune's own logger writes each one to
    ``<trial>/result.json`` (which reaches the run directory with Tune's snapshots), and the
    checkpoint ledger each report that carried a checkpoint as it was registered. Steps
    missing from the history are copied from there. Returns how many reports were recovered.
    """
    from abl.rundir import CHECKPOINT_LEDGER
    from abl.search.packs import member_id, member_results

    history = read_history(run_dir)
    seen: set[tuple[str, int]] = set()
    if history.num_rows and "trial_id" in history.column_names:
        pairs = zip(
            history.column("trial_id").to_pylist(), history.column("step").to_pylist(), strict=True
        )
        seen = {(t, int(s)) for t, s in pairs}
    rows: list[dict[str, Any]] = []
    logs = [*Path(tune_dir).glob("*/result.json"), *Path(tune_dir).glob(f"*/{CHECKPOINT_LEDGER}")]
    for results in sorted(logs):
        trial_id = results.parent.name
        for line in results.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                result = json.loads(line)
            except ValueError:  # the line being written when the driver died
                continue
            members = member_results(result)  # a pack's report: one per member
            each = (
                {trial_id: result}
                if members is None
                else {member_id(trial_id, i): r for i, r in members.items()}
            )
            for one, report in each.items():
                step = report_step(report, 0)
                if step and (one, step) not in seen:
                    seen.add((one, step))
                    time = float(report.get("timestamp") or 0.0)
                    rows.append(
                        {"trial_id": one, "step": step, "time": time, **numeric_metrics(report)}
                    )
    PartWriter(Path(run_dir) / HISTORY).append(rows)
    return len(rows)
