"""Adaptive seeds through ``abl search`` on real Ray: seeds go where the comparison is open.

A function trainable with planted, deterministic results (each (arm, seed) always gives the
same value): arm ``a`` is far ahead, ``b`` and ``c`` tie within the margin, ``d`` is far
behind. With ``repeats: {min: 2, max: 6, margin: 0.2}`` the sweep must stop short of the 24
trials a fixed six seeds runs, ``d`` must stop before ``max``, and the report must say what
each arm ran and why it stopped. A driver SIGKILLed mid-sweep and resumed must end with the
same seeds as the uninterrupted sweep, none run twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from abl.results.store import read_trials
from abl.rundir import TRIALS
from tests.e2e.faults import Sweep, wait_until

pytestmark = pytest.mark.ray

TRAINABLE_PY = """
import random
import time

from ray import tune

MEAN = {"a": 0.0, "b": 1.0, "c": 1.02, "d": 3.0}


def objective(config):
    arm, seed = config["model.kind"], config["seed"]
    value = MEAN[arm] + random.Random(f"{arm}-{seed}").gauss(0, 0.05)
    for step in (1, 2):
        time.sleep(float(config.get("train.sleep", 0)))
        tune.report({"val/loss": value + 0.1 / step})
"""

SPACE = """
name: seeds
trainable: seedpkg.fn:objective
metric: val/loss
fixed: {train.sleep: 0.0}
grid: {model.kind: [a, b, c, d]}
repeats: {min: 2, max: 6, alpha: 0.05, margin: 0.2}
search: {concurrency: 2}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "seedpkg").mkdir()
    (tmp_path / "seedpkg" / "__init__.py").write_text("")
    (tmp_path / "seedpkg" / "fn.py").write_text(TRAINABLE_PY)
    (tmp_path / "seeds.yaml").write_text(textwrap.dedent(SPACE))
    return tmp_path


def abl(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abl", "--root", "runs", *args],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        timeout=600,
    )


def seeds_run(run_dir: Path) -> Counter[tuple[str, int]]:
    """(arm, seed) of every trial, counted."""
    rows = read_trials(run_dir).to_pylist()
    return Counter((r["model.kind"], int(r["seed"])) for r in rows)


def test_seeds_go_where_the_comparison_is_open_and_resume_runs_none_twice(project: Path) -> None:
    dry = abl(project, "search", "seeds.yaml", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "8 to 24 trials" in dry.stdout

    proc = abl(project, "search", "seeds.yaml", "--no-dashboard")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = (project / "runs" / "seeds").iterdir()
    ran = seeds_run(run)
    assert set(ran.values()) == {1}  # no seed twice
    per_arm = Counter(arm for arm, _ in ran)
    assert set(per_arm) == {"a", "b", "c", "d"}
    assert all(n >= 2 for n in per_arm.values())  # min seeds each
    assert per_arm["d"] < 6  # far behind the leader: stopped early
    assert sum(per_arm.values()) < 24
    for arm, n in per_arm.items():  # seeds run in order: 0..n-1
        assert {s for a, s in ran if a == arm} == set(range(n))
    rows = read_trials(run).to_pylist()
    assert {r["status"] for r in rows} == {"completed"}

    report = (run / "report.md").read_text()
    assert "## Seeds" in report
    assert f"{sum(per_arm.values())} trials ran" in report
    assert "a better than d" in report or "better than d" in report
    section = report.split("## Seeds", 1)[1].split("\n## ", 1)[0]
    assert f"| d | {per_arm['d']} |" in section

    client = MlflowClient(f"sqlite:///{project / 'runs' / 'mlflow.db'}")
    (exp,) = [e for e in client.search_experiments() if e.name == "seeds"]
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert len([r for r in runs if "mlflow.parentRunId" in r.data.tags]) == len(rows)

    # The same sweep, its driver SIGKILLed once a few trials are in, then resumed.
    sweep = Sweep(
        project,
        "search",
        "seeds.yaml",
        "train.sleep=0.3",
        env={"PYTHONPATH": str(project)},
    )
    killed_root = project / "runs" / "seeds"

    def second_run() -> Path | None:
        runs = [p for p in killed_root.iterdir() if p != run]
        if runs and (runs[0] / TRIALS).exists():
            done = [r for r in read_trials(runs[0]).to_pylist() if r["status"] == "completed"]
            return runs[0] if len(done) >= 3 else None
        return None

    killed = wait_until("three trials done", second_run, sweep=sweep)
    os.killpg(sweep.proc.pid, signal.SIGKILL)
    sweep.wait()
    resumed = abl(project, "search", "--resume", str(killed.relative_to(project)), "--no-dashboard")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    again = seeds_run(killed)
    assert set(again.values()) == {1}
    assert set(again) == set(ran)  # the same rounds: the same seeds of the same arms
