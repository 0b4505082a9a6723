"""Soak: one sweep whose driver is SIGKILLed at random times, again and again, then resumed to
the end; MLflow must then hold exactly what Parquet holds.

Short by default (CI); ``pytest tests/e2e/test_soak.py --soak`` kills it more often in a
bigger sweep, and ``--soak-seed N`` replays the kill times of a failed run (its seed is in the
failure message).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from abl.results.store import read_history, read_trials
from abl.search.sinks.mlflow import is_once
from tests.e2e.faults import Sweep, check_complete, check_mlflow, project, run_dir

pytestmark = pytest.mark.ray


def reports(run: Path) -> int:
    """How many reports the history store holds (none before the first flush)."""
    return read_history(run).num_rows


def kill_at_random(sweep: Sweep, run: Path | None, rng: random.Random) -> str:
    """SIGKILL the driver at a random moment; returns when, for the failure message.

    A third of the kills come in the first seconds (Ray starting, Tune restoring, trials
    being placed); the others after the session made progress (so the sweep moves on), at a
    random moment of an epoch, a checkpoint or a flush.
    """
    if run is None or rng.random() < 1 / 3:
        delay = rng.uniform(0.5, 6.0)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and sweep.proc.poll() is None:
            time.sleep(0.05)
        what = f"{delay:.1f} s after start"
    else:
        start = reports(run)
        deadline = time.monotonic() + 180
        while reports(run) <= start and sweep.proc.poll() is None:
            assert time.monotonic() < deadline, "no progress in 180 s:\n" + sweep.output[-2000:]
            time.sleep(0.1)
        delay = rng.uniform(0.0, 3.0)
        time.sleep(delay)
        what = f"{delay:.1f} s after a new report"
    if sweep.proc.poll() is None:
        os.kill(sweep.proc.pid, signal.SIGKILL)
    else:
        what += " (it had ended by itself)"
    sweep.wait()
    return what


def mlflow_values(
    client: MlflowClient, run_id: str, keys: set[str]
) -> dict[tuple[str, int], list[float]]:
    out: dict[tuple[str, int], list[float]] = {}
    for key in keys:
        for m in client.get_metric_history(run_id, key):
            out.setdefault((key, m.step), []).append(m.value)
    return out


def test_a_sweep_killed_at_random_times_ends_with_mlflow_equal_to_parquet(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    long = request.config.getoption("--soak")
    seed = request.config.getoption("--soak-seed")
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    kills, epochs = (12, 10) if long else (3, 6)
    cwd = project(tmp_path, epochs=epochs, length=20000)
    log: list[str] = [f"seed {seed}"]
    run: Path | None = None
    for i in range(kills):
        args = ("search", "rel.yaml") if run is None else ("search", "--resume", "rel")
        sweep = Sweep(cwd, *args)
        if run is None:
            run = run_dir(cwd)  # the first kill comes once the run directory exists
        log.append(f"kill {i + 1}: {kill_at_random(sweep, run, rng)}")
    final = Sweep(cwd, "search", "--resume", "rel")
    assert final.wait() == 0, "\n".join(log) + "\n" + final.output[-3000:]
    assert run is not None
    context = "; ".join(log)

    check_complete(run, epochs=epochs)
    children = check_mlflow(f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")
    client = MlflowClient(f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")
    history = read_history(run).to_pylist()
    ids = {r["trial_id"]: r["mlflow_run_id"] for r in read_trials(run).to_pylist()}
    for child in children:
        trial_id = child.data.tags["abl.trial_id"]
        assert ids[trial_id] == child.info.run_id, context
        rows = [r for r in history if r["trial_id"] == trial_id]
        keys = {k for r in rows for k, v in r.items() if "/" in k and v is not None}
        got = mlflow_values(client, child.info.run_id, keys)
        for key in filter(is_once, keys):  # logged once per run (model/params): one point
            points = [v for (k, _), vs in got.items() if k == key for v in vs]
            assert points == [float(rows[0][key])], f"{trial_id} {key}: {context}"
        expected = {
            (key, r["step"]): [float(r[key])]
            for r in rows
            for key in keys
            if r.get(key) is not None and not is_once(key)
        }
        got = {k: v for k, v in got.items() if not is_once(k[0])}
        assert got == expected, f"{trial_id}: {context}"
