"""A user's own model (by decorator or import path) and a custom function trainable, via the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from abl.results.store import read_trials

MODELS_PY = """
from dataclasses import dataclass

from torch import nn

from abl.trainables.config import param
from abl.trainables.models import MODELS
from abl.trainables.models.base import Model


@dataclass
class MLPConfig:
    hidden: int = param(32, "hidden units")


@MODELS.register("mlp")
class MLPForecaster(Model):
    Config = MLPConfig

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.net = nn.Sequential(nn.Linear(info.input_dim, cfg.hidden), nn.GELU(),
                                 nn.Linear(cfg.hidden, info.output_dim))

    def forward(self, x):
        return self.net(x)
"""

TRAINABLE_PY = """
from ray import tune


def quadratic(config):
    for step in range(3):
        tune.report({"score": (config["x"] - 2) ** 2 + step})
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugins")
    (root / "mypkg").mkdir()
    (root / "mypkg" / "__init__.py").write_text("")
    (root / "mypkg" / "models.py").write_text(MODELS_PY)
    (root / "mypkg" / "fn.py").write_text(TRAINABLE_PY)
    return root


def abl(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [sys.executable, "-m", "abl", "--root", "runs", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_model_registered_by_a_plugin_module_trains(project):
    (project / "mlp.yaml").write_text(
        textwrap.dedent("""
        name: mlp
        trainable: forecast
        plugins: [mypkg.models]
        fixed: {model.kind: mlp, train.epochs: 1, data.length: 300, data.time_steps: 16}
        grid: {model.hidden: [4, 8]}
    """)
    )
    proc = abl(project, "search", "mlp.yaml", "--no-dashboard")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (project / "runs" / "mlp").iterdir()
    trials = read_trials(run_dir).to_pylist()
    assert sorted(t["model.hidden"] for t in trials) == [4, 8]
    assert {t["status"] for t in trials} == {"completed"} and all(
        t["model.kind"] == "mlp" for t in trials
    )
    # The same class by import path needs no registration; its knobs are checked all the same.
    proc = abl(
        project,
        "search",
        "mlp.yaml",
        "model.kind=mypkg.models:MLPForecaster",
        "plugins=[]",
        "model.hiden=3",
        "--dry-run",
    )
    assert proc.returncode == 2 and "did you mean 'model.hidden'" in proc.stderr


def test_custom_function_trainable_by_import_path(project):
    (project / "fn.yaml").write_text(
        textwrap.dedent("""
        name: fn
        trainable: mypkg.fn:quadratic
        metric: score
        grid: {x: [0, 2, 5]}
    """)
    )
    proc = abl(project, "search", "fn.yaml", "--no-dashboard")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (project / "runs" / "fn").iterdir()
    trials = {t["x"]: t for t in read_trials(run_dir).to_pylist()}
    assert {x: t["score"] for x, t in trials.items()} == {0: 6.0, 2: 2.0, 5: 11.0}
    assert {t["status"] for t in trials.values()} == {"completed"}


@pytest.mark.ray
def test_a_metric_the_custom_trainable_never_reports_is_one_line(project):
    (project / "nometric.yaml").write_text(
        "name: nometric\ntrainable: mypkg.fn:quadratic\nmetric: val/loss\ngrid: {x: [0]}\n"
    )
    proc = abl(project, "search", "nometric.yaml", "--no-dashboard")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("abl: error:")]
    assert len(errors) == 1
    assert "its first report had: score); got 'val/loss' (nometric.yaml, metric)" in errors[0]
