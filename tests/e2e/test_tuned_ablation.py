"""A tuned ablation through ``abl search`` on real Ray: tuning per arm changes the winner.

The synthetic trainable's arm ``a`` is best at its own learning rate (1e-3), but ``b`` and
``c`` share theirs (1e-2), where ``a`` is poor: one shared learning rate (the most common
optimum) crowns ``b``; tuned per arm, ``a`` wins, and the report says the conclusion changed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from abl.results.store import read_trials
from abl.rundir import TRIALS
from tests.e2e.faults import Sweep, wait_until

TRAINABLE_PY = """
import math
import random

from ray import tune

OPT = {"a": -3.0, "b": -2.0, "c": -2.0}  # log10 of each arm's best learning rate
FLOOR = {"a": 0.0, "b": 0.2, "c": 0.3}  # each arm's loss at its best learning rate


def objective(config):
    import time

    arm = config["model.qk_norm"]
    noise = random.Random(config["seed"]).gauss(0, 0.01)
    final = FLOOR[arm] + (math.log10(config["train.lr"]) - OPT[arm]) ** 2 + noise
    for step in (1, 2):
        time.sleep(float(config.get("train.sleep", 0)))
        tune.report({"val/loss": final + 0.5 / step})
"""

SPACE = """
name: arms
trainable: armpkg.fn:objective
metric: val/loss
grid: {model.qk_norm: [a, b, c]}
tune:
  params: {train.lr: {loguniform: [1.0e-4, 1.0e-1]}}
  trials: 8
  algorithm: random
  seed: 0
confirm: 3
search: {concurrency: 2}
"""


def make_project(root: Path) -> Path:
    (root / "armpkg").mkdir()
    (root / "armpkg" / "__init__.py").write_text("")
    (root / "armpkg" / "fn.py").write_text(TRAINABLE_PY)
    (root / "arms.yaml").write_text(textwrap.dedent(SPACE))
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("tuned"))


def abl(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project), "RAY_ADDRESS": "local"}
    return subprocess.run(
        [sys.executable, "-m", "abl", "--root", "runs", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.ray
def test_tuning_per_arm_changes_the_conclusion(project):
    proc = abl(project, "search", "arms.yaml", "--no-dashboard")
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run_dir,) = (project / "runs" / "arms").iterdir()
    trials = read_trials(run_dir).to_pylist()
    assert len(trials) == 3 * (8 + 3) and {t["status"] for t in trials} == {"completed"}
    tuning = [t for t in trials if t["tune.phase"] == "tune"]
    confirm = [t for t in trials if t["tune.phase"] == "confirm"]
    assert len(tuning) == 24 and len(confirm) == 9
    assert {t["seed"] for t in tuning} == {0} and {t["seed"] for t in confirm} == {1, 2, 3}
    for arm in range(3):  # each arm confirms its own best tuning trial's learning rate
        mine = [t for t in tuning if t["tune.arm"] == arm]
        best = min(mine, key=lambda t: t["val/loss"])
        assert {t["train.lr"] for t in confirm if t["tune.arm"] == arm} == {best["train.lr"]}

    tuned = json.loads((run_dir / "importance.json").read_text())["tuned"]
    ranking = [(a["model.qk_norm"], a["rank"]) for a in tuned["arms"]]
    assert ranking[0] == ("a", 1) and all(rank > 1 for _, rank in ranking[1:])
    assert tuned["untuned"]["ranking"][0] in ("qk_norm=b", "qk_norm=c")
    assert 3e-3 < tuned["untuned"]["value"] < 3e-2
    assert tuned["conclusion_changed"] is True
    report = (run_dir / "report.md").read_text()
    assert "## Tuned ablation" in report and "**Tuning changed the conclusion**" in report
    assert (run_dir / "plots" / "tuned_val_loss.png").is_file()


@pytest.mark.ray
def test_a_tuned_ablation_killed_mid_sweep_resumes_to_the_end(tmp_path):
    """The searcher adds trials one by one: a trial started after Tune's last snapshot must
    not be unknown to the resume (its row stayed running and the resume waited for it)."""
    project = make_project(tmp_path)
    sweep = Sweep(
        project, "search", "arms.yaml", "+train.sleep=0.3", env={"PYTHONPATH": str(project)}
    )
    root = project / "runs" / "arms"

    def started() -> Path | None:
        (run,) = [p for p in root.iterdir() if (p / TRIALS).exists()]
        done = sum(r["status"] == "completed" for r in read_trials(run).to_pylist())
        return run if done >= 4 else None

    run_dir = wait_until("four trials done", started, sweep=sweep)
    os.killpg(sweep.proc.pid, signal.SIGKILL)
    sweep.wait()
    resumed = abl(
        project, "search", "--resume", str(run_dir.relative_to(project)), "--no-dashboard"
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    trials = read_trials(run_dir).to_pylist()
    assert {t["status"] for t in trials} == {"completed"}
    assert len(trials) == 3 * (8 + 3)
