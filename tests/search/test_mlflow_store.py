"""A new SQLite tracking store, first used by several processes at once (two sweeps starting)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from abl.search.sinks.mlflow import ensure_store

PROCESSES = 4


def first_use(uri: str, name: str, barrier: mp.synchronize.Barrier) -> None:
    barrier.wait()  # every process reaches MLflow's table creation at the same moment
    ensure_store(uri)
    MlflowClient(uri).create_experiment(name)


def test_processes_starting_at_once_on_a_new_store_all_succeed(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")  # fresh interpreters, as separate `abl search` commands are
    for attempt in range(3):
        uri = f"sqlite:///{tmp_path / f'store{attempt}' / 'mlflow.db'}"
        barrier = ctx.Barrier(PROCESSES)
        procs = [
            ctx.Process(target=first_use, args=(uri, f"e{i}", barrier)) for i in range(PROCESSES)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0] * PROCESSES, f"attempt {attempt}"
        names = {e.name for e in MlflowClient(uri).search_experiments()}
        assert {f"e{i}" for i in range(PROCESSES)} <= names


def create(uri: str) -> None:
    ensure_store(uri)


def test_a_process_killed_while_creating_the_store_leaves_none_half_made(
    tmp_path: Path, monkeypatch
) -> None:
    """Killed while MLflow creates the tables (into abl's cache's empty store, the one slow
    step): neither the store nor the cached empty store is left half made."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the child inherits it
    cache = tmp_path / "cache" / "abl"
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    proc = mp.get_context("spawn").Process(target=create, args=(uri,))
    proc.start()
    deadline = time.monotonic() + 120
    while not list(cache.glob(".mlflow-*")):  # MLflow is creating its tables there
        assert time.monotonic() < deadline and proc.is_alive(), "the store was never begun"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)
    assert proc.exitcode == -signal.SIGKILL
    assert not db.exists()  # half-made tables would fail every later client
    assert not list(cache.glob("mlflow-*"))  # nor would a half-made cached copy be copied
    ensure_store(uri)  # the next sweep makes the store anew
    MlflowClient(uri).create_experiment("after")
    assert "after" in {e.name for e in MlflowClient(uri).search_experiments()}


def test_a_new_store_is_a_copy_of_the_cached_empty_one(tmp_path: Path, monkeypatch) -> None:
    """The first new store makes the cached empty one; later ones copy it, and each is an
    MLflow store like one MLflow made (its Default experiment's artifacts under ./mlruns here).
    A damaged cached copy makes MLflow build the store itself."""
    import mlflow

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = tmp_path / "cache" / "abl" / f"mlflow-{mlflow.__version__}-empty.db"
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)  # the copy's Default experiment is at home here
        uri = f"sqlite:///{tmp_path / name / 'mlflow.db'}"
        ensure_store(uri)
        assert template.is_file()
        client = MlflowClient(uri)
        (default,) = client.search_experiments()
        assert default.name == "Default"
        assert default.artifact_location == str(tmp_path / name / "mlruns" / "0")
        run = client.create_run(client.create_experiment(f"exp-{name}"))
        client.log_metric(run.info.run_id, "val/loss", 0.5, step=1)
        assert client.get_metric_history(run.info.run_id, "val/loss")[0].value == 0.5
    template.write_bytes(b"not a database")
    uri = f"sqlite:///{tmp_path / 'three' / 'mlflow.db'}"
    ensure_store(uri)
    assert [e.name for e in MlflowClient(uri).search_experiments()] == ["Default"]
