"""A worker node lost mid-sweep on a real multi-node Ray cluster (``ray.cluster_utils.Cluster``):
its trials are rescheduled on the remaining node, continue from their checkpoints, and finish."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from abl.results.store import read_history, read_trials
from abl.search import SweepOptions, run_sweep
from abl.space import load_space
from tests.e2e.procs import free_port

pytestmark = pytest.mark.ray


@pytest.fixture
def cluster() -> Iterator[Any]:
    """A head that runs no trials (0 CPUs, dashboard for the state API) and two 1-CPU workers."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    if ray.is_initialized():  # another module's local Ray; later tests start a fresh one
        ray.shutdown()
    port = free_port()
    head = {"num_cpus": 0, "include_dashboard": True, "dashboard_host": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**head, "dashboard_port": port})
    # The state API by address: another test's Ray on this machine would make a guess fail.
    cluster.dashboard = f"http://127.0.0.1:{port}"
    try:
        cluster.workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def remove_node_under_a_trial(cluster: Any, run_root: Path, seen: dict[str, Any]) -> None:
    """Wait for a trial actor on the second worker that has reported, then kill that node."""
    from ray.util.state import list_actors

    victim = cluster.workers[1]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            actors = list_actors(cluster.dashboard, filters=[("state", "=", "ALIVE")], timeout=10)
            # Tune's trial actor; Ray names it by its qualname once a module pickled it by value.
            trials = [a for a in actors if a.class_name.endswith("ImplicitFunc")]
            on_victim = [a for a in trials if a.node_id == victim.node_id]
            runs = list(run_root.glob("*/*/history.parquet"))
            ready = bool(on_victim and runs and read_history(runs[0].parent).num_rows >= 2)
        except Exception as exc:  # the state API can time out on a loaded machine: ask again
            seen.setdefault("errors", []).append(repr(exc))
            time.sleep(0.3)
            continue
        if ready:
            seen["pid"], seen["at"] = on_victim[0].pid, time.time()
            cluster.remove_node(victim, allow_graceful=False)
            return
        time.sleep(0.3)


def attempts(result_json: Path) -> list[tuple[int, int]]:
    """``(worker pid, first step)`` of each attempt of a trial, from Tune's result.json."""
    out: list[tuple[int, int]] = []
    for line in result_json.read_text().splitlines():
        result = json.loads(line)
        if not out or out[-1][0] != result["pid"]:
            out.append((result["pid"], result["training_iteration"]))
    return out


def test_trials_of_a_lost_node_are_rescheduled_and_finish(cluster: Any, tmp_path: Path) -> None:
    overrides = [
        "model.pe_type=none,rope", "model.is_causal=true", "model.d_model=16", "repeats=2",
        "train.epochs=6", "data.length=40000", "data.time_steps=32", "max_failures=3",
        "train.checkpoint_every_s=0",  # a checkpoint every epoch: the node goes mid-trial
    ]  # fmt: skip
    space = load_space("quickstart", overrides)
    seen: dict[str, Any] = {}
    killer = threading.Thread(target=remove_node_under_a_trial, args=(cluster, tmp_path, seen))
    killer.start()
    options = SweepOptions(
        root=tmp_path, address=cluster.address, sinks=("parquet",), report=False, dashboard=False
    )
    result = run_sweep(space, options)
    killer.join(timeout=30)
    assert "pid" in seen, f"no trial ran on the second worker node: {seen}"

    trials = read_trials(result.run_dir).to_pylist()
    assert len(trials) == 4 and {t["status"] for t in trials} == {"completed"}
    assert all(t["steps"] == 6 for t in trials)
    # The trial that was on the lost node ran again in another worker, from its checkpoint.
    runs = {t["trial_id"]: attempts(result.run_dir / "tune" / t["trial_id"] / "result.json")
            for t in trials}  # fmt: skip
    moved = [a for a in runs.values() if a[0][0] == seen["pid"]]
    assert len(moved) == 1 and len(moved[0]) == 2, runs
    (_, first), (_, again) = moved[0]
    assert first == 1 and again > 1  # from a checkpoint: a fresh start would report 1
