"""A researcher's own training script as abl trials, through the CLI on a real Ray: a script that
only prints, pruned by ASHA; one that reads a JSON config and calls ``abl.report``; one that
crashes and one that hangs. Every trial is one row in Parquet and one child run in MLflow."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from abl.results.store import read_history, read_trials

pytestmark = pytest.mark.ray

PRINTS_PY = """
import argparse, json, os, time
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--seed", type=int)
args = p.parse_args()
open("pid", "w").write(str(os.getpid()))
loss = 1.0
for epoch in range(1, 9):
    loss *= 1 - args.lr
    print(f"epoch {epoch} | val_loss {loss:.6f} | acc 0.5", flush=True)
    with open("metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": epoch, "val_loss": loss}) + "\\n")
    time.sleep(0.3)
"""

REPORTS_PY = """
import json, os, sys
from abl import report
config = json.load(open(sys.argv[sys.argv.index("--config") + 1]))
width, seed = config["model"]["width"], config["seed"]
for epoch in range(3):
    report({"val/loss": 1 / width + seed / 100 + 1 / (epoch + 1),
            "threads": int(os.environ["OMP_NUM_THREADS"])}, step=epoch)
"""

RESUMES_PY = """
import json, os, pathlib, time
from abl import report
checkpoint = pathlib.Path(os.environ["ABL_CHECKPOINT_DIR"])
checkpoint.mkdir(parents=True, exist_ok=True)
state = checkpoint / "state.json"
start = json.loads(state.read_text())["epoch"] if state.exists() else 0
with open("starts.log", "a") as f:
    f.write(f"{start}\\n")
for epoch in range(start + 1, 9):
    time.sleep(0.4)
    report({"val/loss": 1.0 / epoch}, step=epoch)
    state.write_text(json.dumps({"epoch": epoch}))
"""

LIGHTNING_PY = """
import argparse
import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
args = p.parse_args()
L.seed_everything(0)
x = torch.randn(256, 4)
y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(256)


class Regressor(L.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.lr, self.net = lr, nn.Linear(4, 1)

    def training_step(self, batch, _):
        loss = nn.functional.mse_loss(self.net(batch[0]).squeeze(-1), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, _):
        self.log("val_loss", nn.functional.mse_loss(self.net(batch[0]).squeeze(-1), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


data = DataLoader(TensorDataset(x, y), batch_size=64)
trainer = L.Trainer(max_epochs=3, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, log_every_n_steps=1, accelerator="cpu")
trainer.fit(Regressor(args.lr), data, data)
"""

FAILS_PY = """
import argparse, json, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--mode")
mode = p.parse_args().mode
open("pid", "w").write(str(os.getpid()))
with open("metrics.jsonl", "a") as f:
    f.write(json.dumps({"val_loss": 1.0}) + "\\n")
if mode == "crash":
    print("Traceback (most recent call last): ...", file=sys.stderr)
    print("RuntimeError: CUDA out of memory. Tried to allocate 9.00 GiB", file=sys.stderr)
    sys.exit(3)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("command")
    scripts = (("prints", PRINTS_PY), ("reports", REPORTS_PY), ("fails", FAILS_PY))
    for name, text in (*scripts, ("resumes", RESUMES_PY), ("lit", LIGHTNING_PY)):
        (root / f"{name}.py").write_text(textwrap.dedent(text))
    return root


def sweep(project: Path, name: str, space: str) -> subprocess.CompletedProcess[str]:
    (project / f"{name}.yaml").write_text(textwrap.dedent(space))
    return subprocess.run(
        [sys.executable, "-m", "abl", "--root", "runs", "search", f"{name}.yaml", "--no-dashboard"],
        cwd=project,
        env={**os.environ, "RAY_ADDRESS": "local"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def one_run_per_trial(project: Path, name: str, run: Path) -> list:
    """Parquet's trials, after checking that MLflow has exactly one child run for each."""
    trials = read_trials(run).to_pylist()
    client = MlflowClient(f"sqlite:///{project / 'runs' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.info.run_id for r in children) == sorted(t["mlflow_run_id"] for t in trials)
    assert len({t["trial_id"] for t in trials}) == len(trials)
    return trials


def alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    "source",
    [
        r"{stdout: 'epoch (?P<epoch>\d+) \| val_loss (?P<val_loss>[0-9.]+)'}",
        "{jsonl: metrics.jsonl}",
    ],
    ids=["printed lines", "json lines"],
)
def test_an_argparse_script_is_swept_pruned_by_asha_and_its_processes_end(project, source):
    name = "prints" if "stdout" in source else "jsonl"
    proc = sweep(
        project,
        name,
        rf"""
        name: {name}
        trainable:
          command: python prints.py
          style: flags=
          metrics: {source}
          names: {{val_loss: val/loss}}
          grace_s: 1
        grid: {{lr: [0.4, 0.2, 0.1, 0.05]}}
        scheduler: {{asha: {{max_t: 8, grace_period: 2, reduction_factor: 2}}}}
        search: {{concurrency: 2}}
        """,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = (project / "runs" / name).iterdir()
    trials = {t["lr"]: t for t in one_run_per_trial(project, name, run)}
    assert trials[0.4]["status"] == "completed" and trials[0.4]["steps"] == 8
    assert trials[0.4]["val/loss"] == pytest.approx(0.6**8, rel=1e-4)
    pruned = [t for t in trials.values() if t["status"] == "pruned"]
    assert pruned and all(t["steps"] < 8 for t in pruned), trials
    for work in (run / "tune").glob("*/work"):
        assert not alive(work / "pid"), f"a stopped trial's script still runs ({work})"
        assert (work / "stdout.log").read_text().startswith("epoch 1 | val_loss")
    history = read_history(run).to_pylist()
    assert len(history) == sum(t["steps"] for t in trials.values())
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_script_reading_a_json_config_and_calling_abl_report(project):
    proc = sweep(
        project,
        "reports",
        """
        name: reports
        trainable: {command: python reports.py --config, style: json}
        grid: {model.width: [4, 8]}
        repeats: 2
        scheduler: {asha: {max_t: 3, grace_period: 1}}
        """,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = (project / "runs" / "reports").iterdir()
    trials = one_run_per_trial(project, "reports", run)
    assert len(trials) == 4 and {t["status"] for t in trials} <= {"completed", "pruned"}
    assert any(t["status"] == "completed" and t["steps"] == 2 for t in trials)  # steps 0, 1, 2
    for t in trials:  # the values the script computes from the config it was given
        last = 1 / t["model.width"] + t["seed"] / 100 + 1 / (t["steps"] + 1)
        assert t["val/loss"] == pytest.approx(last) and t["threads"] == 1
    assert sorted((t["model.width"], t["seed"]) for t in trials) == [(4, 0), (4, 1), (8, 0), (8, 1)]


def test_a_crashing_and_a_hanging_script_are_errored_with_what_they_said(project):
    proc = sweep(
        project,
        "fails",
        """
        name: fails
        trainable:
          command: python fails.py
          metrics: {jsonl: metrics.jsonl}
          names: {val_loss: val/loss}
          timeout_s: 4
          grace_s: 0.5
        grid: {mode: [crash, hang]}
        """,
    )
    out = proc.stdout + proc.stderr
    (run,) = (project / "runs" / "fails").iterdir()
    trials = {t["mode"]: t for t in one_run_per_trial(project, "fails", run)}
    assert {t["status"] for t in trials.values()} == {"errored"}, out
    crash, hang = trials["crash"]["error"], trials["hang"]["error"]
    assert crash.startswith(
        "CommandFailed: command 'python fails.py' exited with status 3 "
        "(RuntimeError: CUDA out of memory. Tried to allocate 9.00 GiB)"
    ), crash
    assert "\n  Traceback (most recent call last): ...\n" in crash  # its stderr follows
    assert hang.startswith("TimeoutError: command 'python fails.py' ran past timeout_s=4"), hang
    for work in (run / "tune").glob("*/work"):
        assert not alive(work / "pid"), f"the hung script still runs ({work})"
    lines = [x for x in out.splitlines() if x.startswith("trial ") and "errored" in x]
    assert len(lines) == 2 and "Trials did not complete" not in out, out


def test_the_logbook_003_hydra_app_runs_unchanged_with_its_own_override_names(tmp_path):
    """examples/hydra_charlm: a Hydra app logging to TensorBoard, swept with ASHA and repeats;
    each trial's folder holds its own Hydra record and event files."""
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [
            sys.executable, "-m", "abl", "--root", str(tmp_path), "search",
            "examples/hydra_charlm/space.yaml", "model.pe_type=randn,rope",
            "training.block_size=8", "training.max_iters=30", "training.eval_interval=10",
            "scheduler.asha.max_t=3", "--no-dashboard",
        ],
        cwd=repo,
        env={**os.environ, "RAY_ADDRESS": "local"},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = (tmp_path / "hydra_charlm").iterdir()
    trials = read_trials(run).to_pylist()
    assert len(trials) == 4 and all(t["steps"] >= 1 for t in trials), trials
    assert {(t["model.pe_type"], t["seed"]) for t in trials} == {
        (pe, seed) for pe in ("randn", "rope") for seed in (0, 1)
    }
    for t in trials:
        work = run / "tune" / t["trial_id"] / "work"
        overrides = yaml.safe_load((work / ".hydra" / "overrides.yaml").read_text())
        assert f"model.pe_type={t['model.pe_type']}" in overrides
        assert f"training.seed={t['seed']}" in overrides and "training.block_size=8" in overrides
        assert list((work / "tb").glob("events.out.tfevents.*")), work
        if t["status"] == "completed":  # TensorBoard's steps: the app's iterations
            assert t["steps"] == 30 and 0 < t["val/loss"] < 5


def test_a_killed_driver_s_command_trial_continues_from_the_script_s_checkpoint(tmp_path):
    """SIGKILL the driver while a script that checkpoints to $ABL_CHECKPOINT_DIR is half-way;
    ``--resume`` runs it again, it continues from its checkpoint, and every step is recorded
    once, in Parquet and in MLflow."""
    from tests.e2e.faults import Sweep, wait_until

    (tmp_path / "resumes.py").write_text(textwrap.dedent(RESUMES_PY))
    (tmp_path / "cmd.yaml").write_text(
        "name: cmd\ntrainable: {command: python resumes.py}\ngrid: {x: [1, 2]}\n"
        "search: {concurrency: 1}\n"
    )
    sweep = Sweep(tmp_path, "search", "cmd.yaml")
    runs = tmp_path / "runs" / "cmd"

    def half_way() -> bool:
        logs = list(runs.glob("*/tune/*/work/abl-report.jsonl"))
        return bool(logs) and len(logs[0].read_text().splitlines()) >= 3

    wait_until("a trial half-way", half_way, sweep=sweep)
    os.kill(sweep.proc.pid, signal.SIGKILL)
    sweep.wait()
    (run,) = runs.iterdir()
    resumed = subprocess.run(
        [sys.executable, "-m", "abl", "--root", "runs", "search", "--resume", f"runs/cmd/{run.name}",
         "--no-dashboard"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert re.search(
        r"^trial \w+ runs its script again; it left a checkpoint in ", resumed.stdout, re.M
    )
    trials = one_run_per_trial(tmp_path, "cmd", run)
    assert {t["status"] for t in trials} == {"completed"} and {t["steps"] for t in trials} == {8}
    starts = [
        [int(x) for x in (run / "tune" / t["trial_id"] / "work" / "starts.log").read_text().split()]
        for t in trials
    ]
    assert any(len(s) == 2 and s[0] == 0 and s[1] >= 3 for s in starts), starts  # continued
    history = read_history(run).to_pylist()
    for t in trials:
        rows = sorted((r["step"], r["val/loss"]) for r in history if r["trial_id"] == t["trial_id"])
        assert rows == [(e, pytest.approx(1.0 / e)) for e in range(1, 9)], rows
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    for t in trials:
        logged = client.get_metric_history(t["mlflow_run_id"], "val/loss")
        assert sorted(m.step for m in logged) == list(range(1, 9))


def test_a_pytorch_lightning_module_with_its_default_tensorboard_logger(project):
    """Lightning writes lightning_logs/version_0/events...; its training steps log train_loss
    alone, so each report is a step with val_loss, the latest train_loss in it."""
    proc = sweep(
        project,
        "lit",
        """
        name: lit
        trainable:
          command: python lit.py
          metrics: {tensorboard: lightning_logs}
          names: {val_loss: val/loss, train_loss: train/loss}
        grid: {lr: [0.01, 0.1]}
        """,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = (project / "runs" / "lit").iterdir()
    trials = {t["lr"]: t for t in one_run_per_trial(project, "lit", run)}
    assert {t["status"] for t in trials.values()} == {"completed"}
    assert trials[0.1]["val/loss"] < trials[0.01]["val/loss"] < 30  # the larger step learns faster
    history = read_history(run).to_pylist()
    rows = sorted((r["step"], r) for r in history if r["trial_id"] == trials[0.1]["trial_id"])
    # Lightning validates after each epoch of 4 batches, at global steps 3, 7, 11
    assert [step for step, _ in rows] == [3, 7, 11] == [3, 7, trials[0.1]["steps"]]
    assert all(r["train/loss"] > 0 and r["epoch"] in (0, 1, 2) for _, r in rows)
