"""GPU placement on a multi-node Ray cluster: a head and two worker nodes that declare a GPU each.

Ray lets a node declare GPUs it does not have, so the placement is Ray's real scheduling; the
trials still train on CPU here, since torch sees no CUDA device.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from abl.results.store import read_history, read_trials
from abl.search import SweepOptions, run_sweep
from abl.space import load_space
from tests.e2e.procs import free_port

pytestmark = pytest.mark.ray
GPU_KEY = re.compile(r"GPU(_group_[0-9a-f]+)?")


@dataclass
class GpuCluster:
    address: str
    workers: list[str]  # node ids of the two GPU workers
    dashboard: str  # the state API's address: another test's Ray may run on this machine


@pytest.fixture(scope="module")
def gpu_cluster() -> Iterator[GpuCluster]:
    """Head (1 CPU, no GPU, dashboard for the state API) + 2 workers (4 CPUs, 1 GPU each)."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():  # another module's local Ray; a later ray.init() starts afresh
        ray.shutdown()
    dashboard_port = free_port()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "num_gpus": 0,
            "include_dashboard": True,
            "dashboard_host": "127.0.0.1",
            "dashboard_port": dashboard_port,
        },
    )
    try:
        workers = [cluster.add_node(num_cpus=4, num_gpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        dashboard = f"http://127.0.0.1:{dashboard_port}"
        yield GpuCluster(cluster.address, [w.node_id for w in workers], dashboard)
    finally:
        ray.shutdown()
        cluster.shutdown()


def _overrides(gpu: float, trials: int) -> list[str]:
    return [
        "model.pe_type=none,rope",
        "model.is_causal=true",
        "model.d_model=16",
        "train.epochs=4",
        "data.length=1500",
        f"repeats={trials // 2}",
        "resources.cpu=1",
        f"resources.gpu={gpu}",
    ]


def _sweep(
    cluster: GpuCluster, gpu: float, trials: int, tmp_path: Path, *, cli: bool = False
) -> list[dict[str, Any]]:
    """Run the sweep through abl on the cluster; check every trial trained on CPU.

    ``cli``: as a user would, ``abl search --address`` in its own process, a second driver.
    """
    overrides = _overrides(gpu, trials)
    if cli:
        command = [sys.executable, "-m", "abl", "--root", str(tmp_path), "search", "quickstart"]
        out = subprocess.run(
            [*command, *overrides, "--address", cluster.address],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        (run_dir,) = (tmp_path / "quickstart").iterdir()
    else:
        options = SweepOptions(
            root=tmp_path, address=cluster.address, sinks=("parquet",), report=False
        )
        run_dir = run_sweep(load_space("quickstart", overrides), options).run_dir
    rows = read_trials(run_dir).to_pylist()
    assert len(rows) == trials and {r["status"] for r in rows} == {"completed"}
    history = read_history(run_dir).to_pylist()
    assert history and {h["perf/cuda"] for h in history} == {0.0}  # a declared GPU, no CUDA
    assert all(r["node"] for r in rows)
    return rows


def _most_at_once(rows: list[dict[str, Any]]) -> int:
    """The most trials whose [start, end] intervals overlap at one moment."""
    events = sorted([(r["start"], 1) for r in rows] + [(r["end"], -1) for r in rows])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def _intervals(rows: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Each trial's (start, end), in seconds after the first start: the failure message."""
    t0 = min(r["start"] for r in rows)
    return sorted((round(r["start"] - t0, 2), round(r["end"] - t0, 2)) for r in rows)


class TrialActors:
    """Samples the live trial actors (Tune's ImplicitFunc) through Ray's state API while a
    sweep runs: where each one ran, what GPU share it asked for, and how many were alive on a
    node at the same moment."""

    def __init__(self, dashboard: str) -> None:
        self.dashboard = dashboard  # the cluster's state API, named: never found by guessing
        self.node: dict[str, str] = {}  # actor id -> node id
        self.gpu: dict[str, float] = {}  # actor id -> GPUs it asked for
        self.most_alive: dict[str, int] = {}  # node id -> most trial actors alive there at once
        self.error: Exception | None = None  # what stopped the sampling, if anything
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TrialActors:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self._sample()
        except Exception as exc:  # re-raised in the test by __exit__
            self.error = exc

    def _sample(self) -> None:
        from ray.util.state import list_actors

        filters = [("state", "=", "ALIVE")]
        while not self._stop.is_set():
            alive: dict[str, int] = {}
            listed = list_actors(self.dashboard, filters=filters, limit=1000, detail=True)
            # Tune's trial actor; Ray names it by its qualname once a module pickled it by value.
            for actor in (a for a in listed if a.class_name.endswith("ImplicitFunc")):
                self.node[actor.actor_id] = actor.node_id
                # Tune places a trial in a placement group: its GPU shows as GPU_group_<id>.
                asked = [v for k, v in actor.required_resources.items() if GPU_KEY.fullmatch(k)]
                self.gpu[actor.actor_id] = sum(asked)
                alive[actor.node_id] = alive.get(actor.node_id, 0) + 1
            for node, n in alive.items():
                self.most_alive[node] = max(n, self.most_alive.get(node, 0))
            self._stop.wait(0.3)


def _wait_for_free_gpus(n: float, timeout: float = 60) -> None:
    import time

    import ray

    deadline = time.monotonic() + timeout
    while ray.available_resources().get("GPU", 0) < n:
        assert time.monotonic() < deadline, f"GPUs still held: {ray.available_resources()}"
        time.sleep(0.2)


def test_one_gpu_per_trial_spreads_trials_over_both_gpu_nodes(gpu_cluster, tmp_path):
    with TrialActors(gpu_cluster.dashboard) as actors:
        rows = _sweep(gpu_cluster, gpu=1, trials=4, tmp_path=tmp_path, cli=True)
    # Two trials ran at once, and each node has one GPU: they were on different nodes.
    assert _most_at_once(rows) == 2, _intervals(rows)
    assert set(actors.node.values()) == set(gpu_cluster.workers)
    assert set(actors.gpu.values()) == {1}
    assert actors.most_alive == dict.fromkeys(gpu_cluster.workers, 1)


def test_quarter_gpu_packs_four_trials_onto_one_card_at_once(gpu_cluster, tmp_path):
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_gpus=1, num_cpus=0)
    class HoldsTheCard:
        def ready(self) -> bool:
            return True

    _wait_for_free_gpus(2)  # the last sweep's trial actors may still be shutting down
    # Another job holds the second worker's card: the sweep has exactly one GPU to share.
    holder = HoldsTheCard.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(gpu_cluster.workers[1], soft=False)
    ).remote()
    ray.get(holder.ready.remote())
    try:
        with TrialActors(gpu_cluster.dashboard) as actors:
            rows = _sweep(gpu_cluster, gpu=0.25, trials=4, tmp_path=tmp_path)
    finally:
        ray.kill(holder)
    assert _most_at_once(rows) == 4, _intervals(rows)
    assert set(actors.gpu.values()) == {0.25}
    assert actors.most_alive == {gpu_cluster.workers[0]: 4}  # four on the one free card
