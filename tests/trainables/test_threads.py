"""A trial runs torch with exactly as many threads as its ``cpu`` resource (real Ray)."""

from __future__ import annotations

import pytest

from abl.results.store import read_history
from abl.search import SweepOptions, run_sweep
from abl.space import load_space


@pytest.mark.parametrize("cpu", [1, 2])
def test_trial_threads_follow_its_cpu_resource(ray_local, tmp_path, cpu):
    space = load_space(
        "quickstart",
        [
            "model.pe_type=none",
            "model.is_causal=true",
            "train.epochs=1",
            "data.length=300",
            "repeats=1",
            f"resources.cpu={cpu}",
        ],
    )
    sweep = run_sweep(space, SweepOptions(root=tmp_path, sinks=("parquet",), report=False))
    history = read_history(sweep.run_dir).to_pylist()
    assert [row["perf/torch_threads"] for row in history] == [cpu]
