"""Sinks driven by a real Ray Tune run, into real Parquet files and a real MLflow SQLite store."""

from __future__ import annotations

import io
import json
import math
import socket
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import ray
import ray.cloudpickle
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from rich.console import Console

from abl.results import TrialStatus, read_history, read_trials
from abl.search.sinks import (
    MLflowSink,
    ParquetSink,
    ProgressSink,
    Sink,
    SinkCallback,
    SweepInfo,
    TrialRecord,
)
from abl.search.sinks.base import PRUNED_MARK
from abl.search.sinks.mlflow import send_batches

KINDS = {"ok": "completed", "fail": "errored", "diverge": "diverged", "prune": "pruned"}
STEPS = {"ok": 3, "fail": 1, "diverge": 2, "prune": 1}


def trainable(config: dict[str, Any]) -> None:
    """Three reports; fails, diverges or runs on (to be pruned) depending on ``kind``."""
    kind, lr = config["kind"], config["train.lr"]
    for i in range(1, 6 if kind == "prune" else 4):
        metrics: dict[str, Any] = {"val/loss": lr / i, "train/loss": 2.0 / i, "note": "text"}
        if kind == "fail" and i == 2:
            raise ValueError("boom: lr too high")
        if kind == "diverge" and i == 2:
            nan = float("nan")
            tune.report({"val/loss": nan, "train/loss": nan, "trial/status": "diverged"})
            return
        if kind == "ok" and i == 3:
            metrics["trial/status"] = "completed"
        tune.report(metrics)


class StopPruned(FIFOScheduler):
    """Stand-in for ASHA: stop the "prune" trials after their first report, marked as pruned."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if trial.config["kind"] == "prune":
            setattr(trial, PRUNED_MARK, True)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE


def make_sweep(tmp_path: Path, tracking_uri: str) -> SweepInfo:
    run_dir = tmp_path / "abl-runs" / "sinks-test" / "2024-05-01T12-00-00"
    run_dir.mkdir(parents=True)
    (run_dir / "space.yaml").write_text("name: sinks-test\nmetric: val/loss\n")
    return SweepInfo(
        name="sinks-test",
        run_dir=run_dir,
        metric="val/loss",
        mode="min",
        space_file=run_dir / "space.yaml",
        total_trials=None,
        tracking_uri=tracking_uri,
    )


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """What the engine passes as ``config_of``: the full config, defaults filled in."""
    return {**config, "train.epochs": 3}


@pytest.fixture(scope="module")
def swept(ray_local: Any, tmp_path_factory: pytest.TempPathFactory):
    """Run one sweep through every sink; the tests below check what each wrote."""
    # Workers cannot import this test module: ship its functions by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    tmp_path = tmp_path_factory.mktemp("sweep")
    sweep = make_sweep(tmp_path, f"sqlite:///{tmp_path}/mlflow.db")
    out = io.StringIO()
    sinks = [
        MLflowSink(tracking_uri=sweep.tracking_uri),
        ParquetSink(),
        # no lines while trials run: this sweep's count of lines is exact (one per end)
        ProgressSink(
            console=Console(file=out, force_terminal=False, width=200), pipe_every_s=math.inf
        ),
    ]
    callback = SinkCallback(sinks, sweep, flush_every_s=0.0, config_of=with_defaults)
    param_space = {
        "kind": tune.grid_search(list(KINDS)),
        "train.lr": tune.grid_search([0.1, 0.2]),
        "model.pe_type": "rope",
        "seed": 0,
    }
    run_config = tune.RunConfig(
        storage_path=str(tmp_path / "tune"), callbacks=[callback], verbose=0
    )
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        run_config=run_config,
        tune_config=tune.TuneConfig(reuse_actors=True, scheduler=StopPruned()),
    )
    tuner.fit()
    return sweep, callback, out.getvalue()


@pytest.mark.ray
def test_trials_parquet_has_one_final_row_per_trial(swept: Any) -> None:
    sweep, _, _ = swept
    rows = read_trials(sweep.run_dir).to_pylist()
    assert len(rows) == 2 * len(KINDS)
    assert len(list((sweep.run_dir / "trials.parquet").iterdir())) == 1  # compacted on close
    for row in rows:
        kind = row["kind"]
        assert row["status"] == KINDS[kind], row
        assert row["steps"] == STEPS[kind]
        assert row["model.pe_type"] == "rope" and row["seed"] == 0 and row["train.epochs"] == 3
        assert row["train.lr"] in (0.1, 0.2)
        assert row["end"] >= row["start"] and row["wall_s"] >= 0 and row["node"]
        assert row["best/val/loss"] == pytest.approx(row["train.lr"] / row["best_step"])
        assert "note" not in row and "trial/status" not in row  # not numeric
    ok = next(r for r in rows if r["kind"] == "ok")
    assert ok["best_step"] == 3 and ok["val/loss"] == pytest.approx(ok["train.lr"] / 3)
    assert ok["error"] is None
    diverged = next(r for r in rows if r["kind"] == "diverge")
    assert math.isnan(diverged["val/loss"]) and diverged["best_step"] == 1
    failed = next(r for r in rows if r["kind"] == "fail")
    assert failed["error"].startswith("ValueError: boom: lr too high\n")
    assert "Traceback" in failed["error"] or "File " in failed["error"]


@pytest.mark.ray
def test_history_parquet_has_one_row_per_report(swept: Any) -> None:
    sweep, _, _ = swept
    history = read_history(sweep.run_dir).to_pylist()
    trials = {r["trial_id"]: r for r in read_trials(sweep.run_dir).to_pylist()}
    assert len(history) == sum(r["steps"] for r in trials.values())
    for trial_id, trial in trials.items():
        steps = [h["step"] for h in history if h["trial_id"] == trial_id]
        assert steps == list(range(1, trial["steps"] + 1))
    assert all(h["time"] > 0 and "train/loss" in h for h in history)


@pytest.mark.ray
def test_mlflow_has_parent_and_child_runs(swept: Any) -> None:
    sweep, _, _ = swept
    client = MlflowClient(sweep.tracking_uri)
    exp = client.get_experiment_by_name("sinks-test")
    assert exp.artifact_location == (sweep.run_dir.parents[2] / "mlartifacts").as_uri()
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.info.run_name == sweep.run_dir.name
    assert parent.data.tags["abl.sweep"] == "sinks-test"
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["space.yaml"]
    saved = json.loads((sweep.run_dir / "mlflow.json").read_text())
    assert saved["parent_run_id"] == parent.info.run_id

    trials = {r["trial_id"]: r for r in read_trials(sweep.run_dir).to_pylist()}
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(trials)
    for child in children:
        trial = trials[child.data.tags["abl.trial_id"]]
        assert trial["mlflow_run_id"] == child.info.run_id
        assert child.info.run_name == trial["trial_id"]
        assert child.data.params == {
            "kind": trial["kind"],
            "train.lr": str(trial["train.lr"]),
            "model.pe_type": "rope",
            "seed": "0",
            "train.epochs": "3",
        }
        failed = trial["status"] in (TrialStatus.ERRORED.value, TrialStatus.DIVERGED.value)
        assert child.info.status == ("FAILED" if failed else "FINISHED")
        assert child.data.tags["abl.status"] == trial["status"]
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val/loss")]
        assert sorted(steps) == list(range(1, trial["steps"] + 1))
        if trial["status"] == "errored":
            assert child.data.tags["abl.error"].startswith("ValueError: boom")


@pytest.mark.ray
def test_progress_prints_a_line_per_ended_trial(swept: Any) -> None:
    _, _, out = swept
    lines = out.splitlines()
    assert len(lines) == 2 * len(KINDS)
    assert len([ln for ln in lines if "errored: ValueError: boom: lr too high | " in ln]) == 2
    assert len([ln for ln in lines if " diverged | " in ln]) == 2
    assert "8/8 done · 0 running · 0 pending · best val/loss=0.03333 (trial " in lines[-1]


def test_progress_on_a_terminal_keeps_one_live_line(tmp_path: Path) -> None:
    out = io.StringIO()
    sweep = make_sweep(tmp_path, "sqlite:///unused.db")
    sink = ProgressSink(console=Console(file=out, force_terminal=True, width=200), refresh_s=0.1)
    sink.open(sweep)
    for trial_id, status in [("t1", TrialStatus.COMPLETED), ("t2", TrialStatus.ERRORED)]:
        rec = record(trial_id)
        sink.trial_started(rec)
        rec.update(1, {"val/loss": 0.5}, "val/loss", "min")
        sink.trial_result(rec, 1, {"val/loss": 0.5}, 1.7e9 + 1)
        rec.status, rec.end, rec.error = status, 1.7e9 + 30, "ValueError: boom\ntraceback"
        sink.trial_ended(rec)
        sink.flush()
    sink.close()
    text = out.getvalue()
    assert "trial t2 errored: ValueError: boom" in text and "trial t1 completed" not in text
    assert "2 done · 0 running · best val/loss=0.5 (trial t1)" in text


def test_progress_shows_the_epoch_of_running_trials_on_a_pipe_too(tmp_path: Path) -> None:
    out = io.StringIO()
    sweep = make_sweep(tmp_path, "sqlite:///unused.db")
    sink = ProgressSink(console=Console(file=out, force_terminal=False, width=300), pipe_every_s=0)
    sink.open(sweep)
    recs = [TrialRecord(t, {"train.epochs": 8}, TrialStatus.RUNNING, start=1.7e9) for t in "ab"]
    for rec in recs:
        sink.trial_started(rec)
    for step in (1, 2):
        for rec in recs:
            rec.update(step, {"val/loss": 1.0 / step}, "val/loss", "min")
            sink.trial_result(rec, step, {"val/loss": 1.0 / step}, 1.7e9 + step)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # a line per report here (pipe_every_s=0); none are lost
    assert lines[-1].endswith("· a epoch 2/8, b epoch 2/8")
    recs[0].status, recs[0].end = TrialStatus.COMPLETED, 1.7e9 + 3
    sink.trial_ended(recs[0])
    assert out.getvalue().splitlines()[-1].endswith("· b epoch 2/8")


def test_progress_of_a_resumed_sweep_starts_from_the_earlier_best(tmp_path: Path) -> None:
    out = io.StringIO()
    sweep = make_sweep(tmp_path, "sqlite:///unused.db")
    sweep.ended_before, sweep.best_before = 3, (0.25, "t0")
    sink = ProgressSink(console=Console(file=out, force_terminal=False, width=300))
    sink.open(sweep)
    rec = record("t9")
    sink.trial_started(rec)
    rec.update(1, {"val/loss": 0.5}, "val/loss", "min")
    rec.status, rec.end = TrialStatus.COMPLETED, 1.7e9 + 3
    sink.trial_ended(rec)
    assert "4 done" in out.getvalue() and "best val/loss=0.25 (trial t0)" in out.getvalue()


def test_progress_best_is_the_trial_the_report_ranks_first(tmp_path: Path) -> None:
    """Best epoch vs last report: t1 peaks at 0.2 then ends at 0.9, t2 ends at 0.5, t3 is
    pruned at 0.1. The report (top_trials on trials.parquet) ranks t2 first; so must the line."""
    from abl.results import top_trials

    out = io.StringIO()
    sweep = make_sweep(tmp_path, "sqlite:///unused.db")
    progress = ProgressSink(console=Console(file=out, force_terminal=False, width=200))
    parquet = ParquetSink()
    curves = {
        "t1": ([0.2, 0.9], TrialStatus.COMPLETED),
        "t2": ([0.7, 0.5], TrialStatus.COMPLETED),
        "t3": ([0.1], TrialStatus.PRUNED),
    }
    for sink in (progress, parquet):
        sink.open(sweep)
    for trial_id, (values, status) in curves.items():
        rec = record(trial_id)
        for sink in (progress, parquet):
            sink.trial_started(rec)
        for step, value in enumerate(values, start=1):
            rec.update(step, {"val/loss": value}, "val/loss", "min")
            for sink in (progress, parquet):
                sink.trial_result(rec, step, {"val/loss": value}, 1.7e9 + step)
        rec.status, rec.end = status, 1.7e9 + 10
        for sink in (progress, parquet):
            sink.trial_ended(rec)
    parquet.close()
    progress.close()
    ranked = top_trials(read_trials(sweep.run_dir).to_pandas(), "val/loss", "min", k=1)
    assert ranked["trial_id"].tolist() == ["t2"]
    assert "best val/loss=0.5 (trial t2)" in out.getvalue().splitlines()[-1]


@pytest.mark.ray
def test_callback_survives_pickling_after_use(swept: Any) -> None:
    """Ray pickles callbacks into tuner.pkl; clients and consoles are dropped, not pickled."""
    _, callback, _ = swept
    clone = ray.cloudpickle.loads(ray.cloudpickle.dumps(callback))
    assert [type(s) for s in clone.sinks] == [type(s) for s in callback.sinks]
    assert clone.sinks[0].parent_run_id == callback.sinks[0].parent_run_id


def record(trial_id: str = "t1") -> TrialRecord:
    return TrialRecord(trial_id, {"train.lr": 0.1}, TrialStatus.RUNNING, start=1.7e9)


def links(sink: Sink) -> dict[str, str]:
    """The run ids ``sink`` announces (to a SinkCallback in a sweep), by trial id."""
    runs: dict[str, str] = {}
    sink.announce = runs.__setitem__
    return runs


def drive(sink: MLflowSink, sweep: SweepInfo, rec: TrialRecord) -> dict[str, str]:
    """Every hook, in the order the callback calls them; the run ids it announced."""
    runs = links(sink)
    sink.open(sweep)
    sink.trial_started(rec)
    rec.update(1, {"val/loss": 1.0}, "val/loss", "min")
    sink.trial_result(rec, 1, {"val/loss": 1.0}, 1.7e9 + 1)
    sink.flush()
    rec.status, rec.end = TrialStatus.COMPLETED, 1.7e9 + 2
    sink.trial_ended(rec)
    sink.drain()
    return runs


def test_mlflow_sink_with_dead_server_warns_once_and_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    sweep = make_sweep(tmp_path, "http://127.0.0.1:9")
    sink, rec = MLflowSink(tracking_uri=sweep.tracking_uri), record()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = drive(sink, sweep, rec)
        sink.close()
    ours = [w for w in caught if "MLflowSink" in str(w.message)]
    assert len(ours) == 1 and issubclass(ours[0].category, RuntimeWarning)
    assert "pending" in str(ours[0].message)
    assert sink.parent_run_id is None and runs == {}


def test_mlflow_sink_sends_pending_data_once_the_store_is_back(tmp_path: Path) -> None:
    db_dir = tmp_path / "not-yet"
    db_dir.write_text("a file where the store's folder should be")
    sweep = make_sweep(tmp_path, f"sqlite:///{db_dir}/mlflow.db")
    sink, rec = MLflowSink(tracking_uri=sweep.tracking_uri, retry_s=0.0), record()
    with pytest.warns(RuntimeWarning, match="opening the MLflow experiment failed"):
        runs = drive(sink, sweep, rec)
    db_dir.unlink()
    sink.flush()  # the store answers now: everything pending goes out
    sink.close()
    client = MlflowClient(sweep.tracking_uri)
    child = client.get_run(runs["t1"])
    assert child.info.status == "FINISHED"
    assert child.data.params == {"train.lr": "0.1"} and child.data.metrics == {"val/loss": 1.0}
    assert client.get_run(sink.parent_run_id).info.status == "FINISHED"


def test_a_stopped_sweep_leaves_its_parent_run_killed_though_every_trial_ended(
    tmp_path: Path,
) -> None:
    """Ctrl-C after the last trial ended: abl says interrupted and skips the report, so the
    parent run stays KILLED (resumable) rather than FINISHED; its child is FINISHED."""
    sweep = make_sweep(tmp_path, f"sqlite:///{tmp_path}/mlflow.db")
    sink, rec = MLflowSink(tracking_uri=sweep.tracking_uri), record()
    runs = drive(sink, sweep, rec)
    sink.stopping()
    sink.close()
    client = MlflowClient(sweep.tracking_uri)
    assert client.get_run(runs["t1"]).info.status == "FINISHED"
    assert client.get_run(sink.parent_run_id).info.status == "KILLED"


def test_mlflow_sink_resumes_the_parent_run_of_the_run_dir(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path, f"sqlite:///{tmp_path}/mlflow.db")
    first = MLflowSink(tracking_uri=sweep.tracking_uri)
    first.open(sweep)
    first.trial_started(record("t1"))
    first.close()  # interrupted: t1 never ended
    second = MLflowSink(tracking_uri=sweep.tracking_uri)
    rec = record("t1")
    runs = drive(second, sweep, rec)
    second.close()
    assert second.parent_run_id == first.parent_run_id
    client = MlflowClient(sweep.tracking_uri)
    mlflow_runs = client.search_runs([client.get_experiment_by_name("sinks-test").experiment_id])
    assert len(mlflow_runs) == 2  # the parent and t1's one child, reused
    assert client.get_run(runs["t1"]).info.status == "FINISHED"


def test_mlflow_hooks_return_while_the_server_has_not_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hooks hand their calls to the writer thread: a server that accepted the connection
    and never answers does not hold up the Tune driver loop."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with socket.create_server(("127.0.0.1", 0)) as server:
            server.settimeout(30)
            sweep = make_sweep(tmp_path, f"http://127.0.0.1:{server.getsockname()[1]}")
            sink, rec = MLflowSink(tracking_uri=sweep.tracking_uri), record()
            runs = links(sink)
            sink.open(sweep)
            conn, _ = server.accept()  # the writer thread is inside its first request now
            with conn:
                sink.trial_started(rec)
                sink.trial_result(rec, 1, {"val/loss": 1.0}, 1.7e9 + 1)
                sink.flush()
                rec.status, rec.end = TrialStatus.COMPLETED, 1.7e9 + 2
                sink.trial_ended(rec)
                conn.settimeout(30)
                assert conn.recv(1 << 16).split(b" ")[0] in (b"GET", b"POST")
                # Every hook returned while that request is unanswered: no EOF, it waits.
                conn.setblocking(False)
                with pytest.raises(BlockingIOError):
                    conn.recv(1, socket.MSG_PEEK)
        sink.close()  # the server is gone: the writer fails, warns, keeps the trial pending
    assert any("MLflowSink" in str(w.message) for w in caught)
    assert sink.pending == 1 and runs == {}


def test_parquet_rows_get_a_run_id_announced_before_or_after_they_were_written(
    tmp_path: Path,
) -> None:
    sweep = make_sweep(tmp_path, "unused")
    sink, rec = ParquetSink(), record()
    sink.open(sweep)
    sink.trial_linked("t0", "early")  # before its trial started
    sink.trial_started(record("t0"))
    sink.trial_started(rec)
    rec.status, rec.end = TrialStatus.COMPLETED, 1.7e9 + 2
    sink.trial_ended(rec)

    def rows() -> dict[str, tuple[str | None, str]]:
        table = read_trials(sweep.run_dir).to_pylist()
        return {r["trial_id"]: (r["mlflow_run_id"], r["status"]) for r in table}

    assert rows() == {"t0": ("early", "running"), "t1": (None, "completed")}
    sink.trial_linked("t1", "abc123")  # what the MLflow writer thread announces later
    sink.close()
    assert rows() == {"t0": ("early", "running"), "t1": ("abc123", "completed")}
    sink.trial_linked("t0", "late")  # after the close: written, and compacted again
    assert rows() == {"t0": ("late", "running"), "t1": ("abc123", "completed")}
    assert len(list((sweep.run_dir / "trials.parquet").iterdir())) == 1


def test_send_batches_splits_at_mlflows_limits_and_sends_everything(tmp_path: Path) -> None:
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run_id = client.create_run(client.create_experiment("limits")).info.run_id
    params = [Param(f"p{i}", str(i)) for i in range(150)]
    metrics = [Metric("m", float(i), 0, i) for i in range(1900)]
    tags = [RunTag("abl.status", "completed")]
    send_batches(client, run_id, params=params, metrics=metrics, tags=tags)
    assert params == metrics == tags == []  # sent ones leave the lists
    run = client.get_run(run_id)
    assert len(run.data.params) == 150 and run.data.tags["abl.status"] == "completed"
    assert [m.step for m in client.get_metric_history(run_id, "m")] == list(range(1900))


def test_abl_sync_sends_to_the_store_the_sweep_named_even_if_it_was_down_at_the_start(
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from abl.cli import main

    db_dir = tmp_path / "team-store"
    db_dir.write_text("a file where the store's folder should be: the store is down")
    sweep = make_sweep(tmp_path, f"sqlite:///{db_dir}/mlflow.db")
    (sweep.run_dir / "space.yaml").write_text("name: sinks-test\ntrainable: forecast\n")
    sinks = [MLflowSink(tracking_uri=sweep.tracking_uri, retry_s=3600.0), ParquetSink()]
    rec = record()
    with pytest.warns(RuntimeWarning, match="opening the MLflow experiment failed"):
        for sink in sinks:
            sink.open(sweep)
            sink.trial_started(rec)
        rec.update(1, {"val/loss": 1.0}, "val/loss", "min")
        rec.status, rec.end = TrialStatus.COMPLETED, 1.7e9 + 2
        for sink in sinks:
            sink.trial_result(rec, 1, {"val/loss": 1.0}, 1.7e9 + 1)
            sink.trial_ended(rec)
            sink.close()
    saved = json.loads((sweep.run_dir / "mlflow.json").read_text())
    assert saved["experiment_id"] is None and saved["tracking_uri"] == sweep.tracking_uri
    db_dir.unlink()  # the server is back
    root = tmp_path / "abl-runs"
    result = CliRunner().invoke(main, ["--root", str(root), "sync", str(sweep.run_dir)])
    assert result.exit_code == 0, result.output
    assert "1 child runs created" in result.output
    client = MlflowClient(sweep.tracking_uri)
    (child,) = [
        r
        for r in client.search_runs([client.get_experiment_by_name("sinks-test").experiment_id])
        if "mlflow.parentRunId" in r.data.tags
    ]
    assert child.data.metrics == {"val/loss": 1.0}
    assert not (root / "mlflow.db").exists()  # nothing went to a fresh local store
    assert json.loads((sweep.run_dir / "mlflow.json").read_text())["tracking_uri"] == (
        sweep.tracking_uri
    )
    # The trials row that had no run id (the store was down) has its child's now.
    assert "1 trials rows given their MLflow run id" in result.output
    assert read_trials(sweep.run_dir).column("mlflow_run_id").to_pylist() == [child.info.run_id]

    # A second sync has nothing to send, and writes nothing: not the parent's status or end
    # time, not its artifacts, not the run directory.
    parent_id = child.data.tags["mlflow.parentRunId"]
    before = client.get_run(parent_id).info
    artifacts = [a.path for a in client.list_artifacts(parent_id)]
    files = {p: p.stat().st_mtime_ns for p in sweep.run_dir.rglob("*")}
    again = CliRunner().invoke(main, ["--root", str(root), "sync", str(sweep.run_dir)])
    assert again.exit_code == 0, again.output
    assert "already has all 1 trials" in again.output and "parquet" not in again.output
    after = client.get_run(parent_id).info
    assert after.status == before.status == "FINISHED"
    assert after.end_time == before.end_time
    assert [a.path for a in client.list_artifacts(parent_id)] == artifacts == ["space.yaml"]
    assert {p: p.stat().st_mtime_ns for p in sweep.run_dir.rglob("*")} == files


def test_the_earlier_best_of_a_resumed_sweep_is_a_completed_trial() -> None:
    from abl.search.sweep import best_completed

    recs = []
    for trial_id, value, status in [
        ("t1", 0.1, TrialStatus.ERRORED),  # better, but errored: never "best"
        ("t2", 0.4, TrialStatus.COMPLETED),
        ("t3", 0.3, TrialStatus.COMPLETED),
        ("t4", 0.2, TrialStatus.PRUNED),
    ]:
        rec = record(trial_id)
        rec.update(1, {"val/loss": value}, "val/loss", "min")
        rec.status = status
        recs.append(rec)
    assert best_completed(recs, "val/loss", "min") == (0.3, "t3")
    assert best_completed(recs, "val/loss", "max") == (0.4, "t2")
    assert best_completed(recs[:1], "val/loss", "min") is None


def test_a_resume_sends_mlflow_what_a_killed_driver_left_unsent(tmp_path: Path) -> None:
    """The driver died after Parquet had a trial's end but before MLflow did (its writer thread
    died with it): the run stays RUNNING without its last step. The resume reconciles."""
    from abl.search.sweep import reconcile_mlflow

    sweep = make_sweep(tmp_path, f"sqlite:///{tmp_path}/mlflow.db")
    (sweep.run_dir / "space.yaml").write_text("name: sinks-test\ntrainable: forecast\n")
    mlflow_sink, parquet = (
        MLflowSink(tracking_uri=sweep.tracking_uri, background=False),
        ParquetSink(),
    )
    rec, runs = record(), links(mlflow_sink)
    for sink in (mlflow_sink, parquet):
        sink.open(sweep)
        sink.trial_started(rec)
    rec.update(1, {"val/loss": 1.0}, "val/loss", "min")
    for sink in (mlflow_sink, parquet):
        sink.trial_result(rec, 1, {"val/loss": 1.0}, 1.7e9 + 1)
        sink.flush()
    rec.update(2, {"val/loss": 0.5}, "val/loss", "min")
    parquet.trial_result(rec, 2, {"val/loss": 0.5}, 1.7e9 + 2)  # MLflow never got step 2...
    rec.status, rec.end = TrialStatus.COMPLETED, 1.7e9 + 3
    parquet.trial_ended(rec)  # ...nor the end
    parquet.close()
    client = MlflowClient(sweep.tracking_uri)
    run_id = runs["t1"]
    assert client.get_run(run_id).info.status == "RUNNING"
    assert reconcile_mlflow(sweep) == 0
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["abl.status"] == "completed"
    assert sorted(m.step for m in client.get_metric_history(run_id, "val/loss")) == [1, 2]


def test_steps_a_resumed_trial_reports_again_reach_mlflow_once(tmp_path: Path) -> None:
    """A trial restored from a checkpoint older than its last report reports those steps
    again; Parquet keeps one row per step, and so must MLflow (it would keep both)."""
    sweep = make_sweep(tmp_path, f"sqlite:///{tmp_path}/mlflow.db")
    rec = record()
    first = MLflowSink(tracking_uri=sweep.tracking_uri, background=False)
    first.open(sweep)
    first.trial_started(rec)
    for step, loss in [(1, 1.0), (2, 0.8)]:
        first.trial_result(rec, step, {"val/loss": loss, "model/params": 10.0}, 1.7e9 + step)
    first.flush()  # and the driver dies here: no close
    resumed = MLflowSink(tracking_uri=sweep.tracking_uri, background=False)
    runs = links(resumed)
    resumed.open(sweep)
    resumed.trial_started(rec)
    for step, loss in [(2, 0.8), (3, 0.6), (3, 0.5)]:  # from checkpoint 1; step 3 twice
        resumed.trial_result(rec, step, {"val/loss": loss, "model/params": 10.0}, 1.7e9 + step)
    rec.status, rec.end = TrialStatus.COMPLETED, 1.7e9 + 4
    resumed.trial_ended(rec)
    resumed.close()
    client = MlflowClient(sweep.tracking_uri)
    run_id = runs["t1"]
    losses = [(m.step, m.value) for m in client.get_metric_history(run_id, "val/loss")]
    assert sorted(losses) == [(1, 1.0), (2, 0.8), (3, 0.5)]  # of a step sent twice, the last
    assert [m.value for m in client.get_metric_history(run_id, "model/params")] == [10.0]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_abl_sync_makes_a_new_parent_run_when_the_store_lost_the_old_one(tmp_path: Path) -> None:
    from abl.search.sinks.mlflow import sync_run

    sweep = make_sweep(tmp_path, f"sqlite:///{tmp_path}/mlflow.db")
    saved = {"tracking_uri": sweep.tracking_uri, "parent_run_id": "0123456789abcdef"}
    (sweep.run_dir / "mlflow.json").write_text(json.dumps(saved))
    parquet, rec = ParquetSink(), record()
    parquet.open(sweep)
    parquet.trial_started(rec)
    rec.update(1, {"val/loss": 1.0}, "val/loss", "min")
    parquet.trial_result(rec, 1, {"val/loss": 1.0}, 1.7e9 + 1)
    rec.status, rec.end = TrialStatus.COMPLETED, 1.7e9 + 2
    parquet.trial_ended(rec)
    parquet.close()
    trials = read_trials(sweep.run_dir).to_pylist()
    report = sync_run(sweep, trials, read_history(sweep.run_dir).to_pylist())
    assert report.parent_created and report.runs_created == report.run_ids_filled == 1
    parent = json.loads((sweep.run_dir / "mlflow.json").read_text())["parent_run_id"]
    assert MlflowClient(sweep.tracking_uri).get_run(parent).info.status == "FINISHED"
