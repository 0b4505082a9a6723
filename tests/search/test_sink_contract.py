"""Every registered sink, driven through SinkCallback: the order of the sinks changes nothing.

The same Tune events (open, trials started, reports, ends, flushes, a stop, the close) and the
run-id events the MLflow sink announces give the same stores in either order: trials.parquet
rows with their MLflow run ids, history.parquet, the MLflow runs (real SQLite store) and the
progress lines. With the store down until the close, every run id comes from the MLflow
sink's close, after the Parquet sink closed when it goes first.
"""

from __future__ import annotations

import io
import math
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from ray.tune.experiment import Trial
from rich.console import Console

from abl.errors import AblWarning
from abl.results import TrialStatus, read_history, read_trials
from abl.search.engine import SweepOptions
from abl.search.sinks import MLflowSink, Sink, SinkCallback, SweepInfo, TrialRecord
from abl.search.sinks.base import PRUNED_MARK
from abl.search.sweep import make_sinks

SINKS = SweepOptions().sinks  # every sink a sweep can stream to
TIMES = {"start", "end", "wall_s", "paused_s", "time"}  # columns of the clock, not the events


def nan_free(value: Any) -> Any:
    """NaN as a string, so that equal stores compare equal (NaN != NaN)."""
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def sweep_in(path: Path, store: str = "mlflow.db") -> SweepInfo:
    run_dir = path / "abl-runs" / "contract" / "2024-05-01T12-00-00"
    run_dir.mkdir(parents=True)
    (run_dir / "space.yaml").write_text("name: contract\nmetric: val/loss\nrepeats: 1\n")
    return SweepInfo(
        name="contract",
        run_dir=run_dir,
        metric="val/loss",
        mode="min",
        space_file=run_dir / "space.yaml",
        total_trials=4,
        tracking_uri=f"sqlite:///{path}/{store}",
    )


def play(callback: SinkCallback, before_close: Callable[[], object] = lambda: None) -> None:
    """One sweep's events: t1 completes, t2 diverges, t3 is pruned, t4 runs when it stops."""
    trials = [Trial("f", config={"lr": i / 10}, trial_id=f"t{i}", stub=True) for i in (1, 2, 3, 4)]
    t1, t2, t3, t4 = trials

    def report(trial: Trial, step: int, loss: float, **more: Any) -> None:
        result = {"training_iteration": step, "val/loss": loss, "hostname": "node-a", **more}
        callback.on_trial_result(0, trials, trial, result)

    callback.setup(total_num_samples=len(trials))
    callback.on_trial_start(0, trials, t1)
    callback.on_trial_start(0, trials, t2)
    report(t1, 1, 0.9, model={"params": 10})
    report(t2, 1, 0.8)
    callback.on_step_end(0, trials)  # a flush: the MLflow sink creates t1's and t2's runs
    report(t1, 2, 0.5, **{"trial/status": "completed"})
    callback.on_trial_complete(0, trials, t1)
    report(t2, 2, math.nan, **{"trial/status": "diverged"})
    callback.on_trial_complete(0, trials, t2)
    callback.on_trial_start(0, trials, t3)
    report(t3, 1, 0.7)
    setattr(t3, PRUNED_MARK, True)
    callback.on_trial_complete(0, trials, t3)
    callback.on_trial_start(0, trials, t4)  # its run is created by the close, KILLED
    report(t4, 1, 0.6)
    callback.stopping()
    before_close()
    callback.on_experiment_end(trials)


def stores(tmp_path: Path, order: tuple[str, ...], *, outage: bool) -> dict[str, Any]:
    """What ``play`` leaves in every store with the sinks in ``order``, less the clock;
    ``outage``: the MLflow store is down until the sweep closes."""
    path, out = tmp_path / "-".join(order), io.StringIO()
    sweep = sweep_in(path, "down/mlflow.db" if outage else "mlflow.db")
    console = Console(file=out, force_terminal=False, width=300)
    sinks = make_sinks(order, tracking_uri=sweep.tracking_uri, console=console)
    callback = SinkCallback(sinks, sweep, flush_every_s=0.0)
    if outage:
        down = path / "down"
        down.write_text("a file where the store's folder should be")

        def store_back() -> None:
            for sink in sinks:  # the MLflow writer has tried every event (and failed)
                if isinstance(sink, MLflowSink):
                    sink.drain()
            down.unlink()

        with pytest.warns(AblWarning, match="opening the MLflow experiment failed"):
            play(callback, before_close=store_back)
    else:
        play(callback)
    client = MlflowClient(sweep.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("contract").experiment_id])
    trial_of = {r.info.run_id: r.data.tags.get("abl.trial_id", "parent") for r in runs}
    mlflow = {
        trial_of[r.info.run_id]: (
            r.info.status,
            r.data.params,
            {k: v for k, v in r.data.tags.items() if k.startswith("abl.") and k != "abl.run_dir"},
            sorted(
                (m.key, m.step, nan_free(m.value))
                for key in r.data.metrics
                for m in client.get_metric_history(r.info.run_id, key)
            ),
        )
        for r in runs
    }
    trials = {
        row["trial_id"]: {
            **{k: nan_free(v) for k, v in row.items() if k not in TIMES},
            "mlflow_run_id": trial_of.get(row["mlflow_run_id"]),  # the trial its run is of
        }
        for row in read_trials(sweep.run_dir).to_pylist()
    }
    history = sorted(
        tuple(sorted((k, nan_free(v)) for k, v in row.items() if k not in TIMES and v is not None))
        for row in read_history(sweep.run_dir).to_pylist()
    )
    lines = re.sub(r"\b\d+(h\d\dm|m\d\ds|s)\b", "T", out.getvalue()).splitlines()
    parts = len(list((sweep.run_dir / "trials.parquet").iterdir()))
    return {
        "trials": trials,
        "history": history,
        "mlflow": mlflow,
        "progress": lines,
        "parts": parts,
    }


@pytest.mark.parametrize("outage", [False, True], ids=["store-up", "store-down-till-close"])
@pytest.mark.parametrize("name", SINKS)
def test_a_sink_first_or_last_gives_the_same_stores(
    tmp_path: Path, name: str, outage: bool
) -> None:
    others = tuple(n for n in SINKS if n != name)
    first = stores(tmp_path, (name, *others), outage=outage)
    last = stores(tmp_path, (*others[::-1], name), outage=outage)
    assert first == last
    trials = first["trials"]
    assert {t: (r["status"], r["mlflow_run_id"]) for t, r in trials.items()} == {
        "t1": ("completed", "t1"),  # each row names its own trial's run
        "t2": ("diverged", "t2"),
        "t3": ("pruned", "t3"),
        "t4": ("running", "t4"),
    }
    assert {t: run[0] for t, run in first["mlflow"].items()} == {
        "parent": "KILLED",  # the sweep was stopped
        "t1": "FINISHED",
        "t2": "FAILED",
        "t3": "FINISHED",
        "t4": "KILLED",
    }
    assert len(first["history"]) == 6 and first["parts"] == 1
    assert [ln for ln in first["progress"] if ln.startswith("trial ")][-1].startswith("trial t3")


@pytest.mark.parametrize("name", SINKS)
def test_every_sink_takes_every_hook_and_a_link_at_any_time(tmp_path: Path, name: str) -> None:
    """The hooks are the base class's; a run id may come before a trial starts and after the
    sink closed; a used sink still pickles (Tune pickles its callbacks)."""
    sweep = sweep_in(tmp_path)
    console = Console(file=io.StringIO(), force_terminal=False)
    (sink,) = make_sinks((name,), tracking_uri=sweep.tracking_uri, console=console)
    assert isinstance(sink, Sink)
    rec = TrialRecord("t1", {"lr": 0.1}, TrialStatus.RUNNING, start=1.7e9)
    sink.open(sweep)
    sink.trial_linked("t1", "run-before")
    sink.trial_started(rec)
    rec.update(1, {"val/loss": 0.5}, "val/loss", "min")
    sink.trial_result(rec, 1, {"val/loss": 0.5}, 1.7e9 + 1)
    sink.trial_retried(rec, "ValueError: boom\ntraceback")
    sink.flush()
    rec.status, rec.end = TrialStatus.COMPLETED, 1.7e9 + 2
    sink.trial_ended(rec)
    sink.stopping()
    sink.hurry()
    sink.close()
    sink.trial_linked("t1", "run-after")
    pickle.loads(pickle.dumps(sink))
    if name == "parquet":
        assert read_trials(sweep.run_dir).column("mlflow_run_id").to_pylist() == ["run-after"]
