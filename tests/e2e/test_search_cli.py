"""``abl search`` end to end from the CLI: real Ray, real MLflow (SQLite), real Parquet files."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from abl.results.store import read_history, read_trials
from tests.e2e.procs import free_port
from tests.e2e.test_ui import serve_ui

SPACE = """
name: tiny
trainable: forecast
plugins: [boom]
fixed:
  model.d_model: 8
  model.is_causal: true
  data.source: csv
  data.path: {csv}
  data.time_steps: 16
  train.epochs: 2
  train.batch_size: 32
grid:
  model.pe_type: [none, rope]
  model.kind: [att, att_boom]
report: [predict/mse_regressive]
resources: {{cpu: 1}}
"""

# A user's model that crashes while it trains: what no check before the sweep can see (a
# missing file or a bad value is refused before Ray starts).
BOOM_PY = """
from abl.trainables.models import MODELS
from abl.trainables.models.forecast import AttentionForecaster


@MODELS.register("att_boom")
class Boom(AttentionForecaster):
    def forward(self, x):
        raise ValueError("boom: this model always fails")
"""


def abl(*args: str, cwd: Path, **env_vars: str) -> subprocess.CompletedProcess[str]:
    (cwd / "boom.py").write_text(BOOM_PY)
    # the driver and Ray's workers import boom
    env = {**os.environ, "PYTHONPATH": str(cwd), **env_vars}
    return subprocess.run(
        [sys.executable, "-m", "abl", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    csv = tmp / "series.csv"
    csv.write_text(
        "t,y\n" + "".join(f"{i},{10 + math.sin(i / 5) + i / 100:.4f}\n" for i in range(400))
    )
    (tmp / "tiny.yaml").write_text(SPACE.format(csv=csv))
    proc = abl("--root", "runs", "search", "tiny.yaml", "--no-dashboard", cwd=tmp)
    run_dirs = sorted((tmp / "runs" / "tiny").iterdir())
    return proc, run_dirs, tmp


def test_cli_sweep_finishes_and_prints_the_top_table(sweep):
    proc, run_dirs, _ = sweep
    assert proc.returncode == 1, proc.stderr  # 2 of its 4 trials errored (a missing column)
    assert len(run_dirs) == 1
    (line,) = [x for x in proc.stdout.splitlines() if "the first error" in x]
    assert line.startswith("2 of 4 trials errored;") and "boom: this model always fails" in line
    # a new store and a new local Ray: none of the libraries' start-up chatter reaches the user
    for noise in ("Token authentication is enabled", "Creating initial MLflow database tables"):
        assert noise not in proc.stdout + proc.stderr
    assert "top 4 of 4 by val/loss" in proc.stdout
    assert "mlflow" in proc.stdout and "abl --root runs ui" in proc.stdout


def test_trials_parquet_has_one_row_per_trial_with_config_and_metrics(sweep):
    _, (run_dir,), _ = sweep
    assert len(pq.ParquetFile(next((run_dir / "trials.parquet").glob("*.parquet"))).schema) > 0
    trials = read_trials(run_dir).to_pylist()
    assert len(trials) == 4 and len({t["trial_id"] for t in trials}) == 4
    done = [t for t in trials if t["model.kind"] == "att"]
    failed = [t for t in trials if t["model.kind"] == "att_boom"]
    assert {t["status"] for t in done} == {"completed"} and {t["model.pe_type"] for t in done} == {
        "none",
        "rope",
    }
    for t in done:
        assert t["steps"] == 2 and t["train.epochs"] == 2 and t["model.d_model"] == 8
        assert all(
            math.isfinite(t[m])
            for m in ("val/loss", "train/loss", "predict/mse_batch", "predict/mse_regressive")
        )
        assert t["best/val/loss"] <= t["val/loss"] + 1e-12
    assert {t["status"] for t in failed} == {"errored"}
    assert all("boom: this model always fails" in t["error"] for t in failed)


def test_history_parquet_has_every_report(sweep):
    _, (run_dir,), _ = sweep
    history = read_history(run_dir).to_pylist()
    assert len(history) == 4  # 2 completed trials x 2 epochs; errored trials reported nothing
    assert sorted((h["trial_id"], h["step"]) for h in history)[:2][0][1] == 1
    assert all(math.isfinite(h["val/loss"]) for h in history)


def test_mlflow_has_a_parent_and_a_child_run_per_trial(sweep):
    _, (run_dir,), tmp = sweep
    client = MlflowClient(f"sqlite:///{tmp / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the training view
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    trials = {t["trial_id"]: t for t in read_trials(run_dir).to_pylist()}
    for child in children:
        trial = trials[child.info.run_name]
        assert trial["mlflow_run_id"] == child.info.run_id
        assert child.data.params["model.pe_type"] == trial["model.pe_type"]
        assert child.data.params["train.lr"] == str(trial["train.lr"])
        assert child.data.params["model.is_causal"] == "true"  # as the space spells it
        if trial["status"] == "completed":
            assert child.info.status == "FINISHED"
            assert {
                m.key for m in client.get_metric_history(child.info.run_id, "predict/mse_batch")
            }
            steps = [m.step for m in client.get_metric_history(child.info.run_id, "val/loss")]
            assert sorted(steps) == [1, 2]
            # the same at every epoch: one point, not one per step
            assert len(client.get_metric_history(child.info.run_id, "model/params")) == 1
        else:
            assert child.info.status == "FAILED"


def test_report_is_built_and_attached_to_the_mlflow_parent_run(sweep):
    proc, (run_dir,), tmp = sweep
    for name in ("report.md", "report.html", "importance.json"):
        assert (run_dir / name).stat().st_size > 0
    assert "report   " in proc.stdout
    markdown = (run_dir / "report.md").read_text()
    assert "model.pe_type" in markdown and "errored" in markdown  # the failed trials are listed
    client = MlflowClient(f"sqlite:///{tmp / 'runs' / 'mlflow.db'}")
    parent = client.search_runs(
        [client.get_experiment_by_name("tiny").experiment_id], "tags.mlflow.runName != ''"
    )
    parent = next(r for r in parent if "mlflow.parentRunId" not in r.data.tags)
    attached = {f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/report.html", "report/importance.json"} <= attached
    # the space's secondary metric gets its own report beside the main one
    second = run_dir / "report.predict_mse_regressive.md"
    assert "predict/mse_regressive" in second.read_text().splitlines()[0]
    assert "report/report.predict_mse_regressive.md" in attached
    assert "val/loss" in markdown.splitlines()[0]  # the main report is still the space metric's
    # the sweep's definition and its best trial, so sweeps compare in MLflow's runs table
    params = parent.data.params
    assert params["model.pe_type"] == "none,rope" and params["model.kind"] == "att,att_boom"
    assert params["train.epochs"] == "2" and params["metric"] == "val/loss"
    done = [t for t in read_trials(run_dir).to_pylist() if t["status"] == "completed"]
    best = min(done, key=lambda t: t["val/loss"])
    assert parent.data.metrics["best/val/loss"] == pytest.approx(best["val/loss"])
    assert parent.data.tags["abl.best_trial"] == best["trial_id"]
    assert parent.data.metrics["trials/ok"] == 2 and parent.data.metrics["trials/failed"] == 2


def test_bad_space_is_one_line_exit_2_and_nothing_written(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "name: bad\ntrainable: forecast\ngrid: {model.pe_type: [roep]}\n"
    )
    proc = abl("--root", "runs", "search", "bad.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "pe_type must be one of none, randpe, sinpe, rope; got 'roep'" in proc.stderr
    assert "bad.yaml" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_address_with_nothing_listening_is_one_line_exit_2_and_nothing_written(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    proc = abl("--root", "runs", "search", "quickstart", "--address", address, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"nothing answers at '{address}'" in proc.stderr and "ray start --head" in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.pe_typ=rope", "did you mean 'model.pe_type'"),
        ("repeats.x=1", "space setting 'repeats' is a single value (2)"),
        ("repeats=1000000", "at most 100000 trials; this one has 8000000"),
    ],
)
def test_bad_override_is_one_line_exit_2_and_nothing_written(tmp_path, override, expected):
    proc = abl("--root", "runs", "search", "quickstart", override, cwd=tmp_path)
    assert proc.returncode == 2 and expected in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # no leftover run to become "the latest run"


def test_a_model_that_rejects_its_config_stops_the_ray_it_started(tmp_path):
    """Models are built while Ray starts: a model's refusal is still one line, exit 2,
    nothing written, and the Ray started meanwhile is gone when abl exits."""
    overrides = ("model.kind=att_mh", "model.n_head=3")
    ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths
    args = ("--root", "runs", "search", "quickstart", *overrides, "--no-dashboard")
    proc = abl(*args, cwd=tmp_path, RAY_TMPDIR=ray_tmp)
    assert list(Path(ray_tmp).glob("ray/session_2*")), "Ray did not start while models were built"
    left = [
        p for p in psutil.process_iter(["cmdline"]) if ray_tmp in " ".join(p.info["cmdline"] or [])
    ]
    assert not left, left
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "d_model must divide by n_head" in proc.stderr and "quickstart" in proc.stderr
    assert proc.stdout.startswith("quickstart: 16 trials") and proc.stdout.count("\n") == 1
    assert not (tmp_path / "runs").exists()
    # the dry run builds the models before anything else: the same line
    dry = abl("--root", "runs", "search", "quickstart", *overrides, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 2 and dry.stderr == proc.stderr


def test_dry_run_counts_and_runs_nothing(tmp_path):
    proc = abl(
        "--root",
        "runs",
        "search",
        "att_timeseries",
        "model.pe_type=rope,sinpe",
        "--dry-run",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "96 trials" in proc.stdout and "nothing was run" in proc.stdout
    assert not (tmp_path / "runs").exists()


def test_dry_run_says_how_the_trials_are_packed(tmp_path):
    def dry_run(repeats: str) -> list[str]:
        overrides = ("model.is_causal=true", f"repeats={repeats}", "pack=4")
        proc = abl("--root", "runs", "search", "quickstart", *overrides, "--dry-run", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()[:2]

    first, second = dry_run("5")
    assert first.startswith("quickstart: 20 trials") and "packs of up to 4" in first
    # 4 PE types x 5 seeds: each PE type's 5 in a pack of 3 and one of 2
    assert second.startswith("packed: 20 trials in 8 Ray trials of 2 to 3 ")
    first, second = dry_run("{min: 2, max: 5}")
    assert first.startswith("quickstart: 8 to 20 trials") and "packs of up to 4" in first
    assert second.startswith("packed: each round's seeds train fused, up to 4 to a Ray trial")
    assert not (tmp_path / "runs").exists()


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
    "--virtual-time-budget=20000",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium(*args: str, profile: Path) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail(
            "this test needs Debian's chromium (apt-get install chromium); .ci/run installs it"
        )
    proc = subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.stdout


def test_mlflow_ui_in_chromium_shows_the_sweep(sweep, tmp_path):
    _, (run_dir,), tmp = sweep
    client = MlflowClient(f"sqlite:///{tmp / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    child = next(t for t in read_trials(run_dir).to_pylist() if t["status"] == "completed")
    with serve_ui(Path("runs"), cwd=tmp) as port:
        base = f"http://127.0.0.1:{port}/#/experiments/{exp.experiment_id}"
        dom = chromium(
            "--dump-dom", f"{base}/runs/{child['mlflow_run_id']}", profile=tmp_path / "a"
        )
        assert child["trial_id"] in dom and "model.pe_type" in dom and "val/loss" in dom
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "mlflow-ui-runs.png"
        chromium(f"--screenshot={shot}", f"{base}/runs", profile=tmp_path / "b")
        assert shot.stat().st_size > 10_000


def test_a_sweep_where_no_trial_completes_exits_1_with_the_first_error(tmp_path):
    csv = tmp_path / "series.csv"
    csv.write_text("t,y\n" + "".join(f"{i},{i / 10}\n" for i in range(100)))
    space = (
        SPACE.format(csv=csv)
        .replace("[att, att_boom]", "[att_boom]")
        .replace("[none, rope]", "[none]")
    )
    (tmp_path / "tiny.yaml").write_text(space)
    proc = abl("--root", "runs", "search", "tiny.yaml", "--no-dashboard", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = [x for x in proc.stdout.splitlines() if "the first error" in x]
    assert line.startswith("no trial completed;") and "boom: this model always fails" in line
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_tracking_server_that_does_not_answer_is_one_warning_line(tmp_path):
    csv = tmp_path / "series.csv"
    csv.write_text("t,y\n" + "".join(f"{i},{math.sin(i / 5):.4f}\n" for i in range(200)))
    space = (
        SPACE.format(csv=csv).replace("[att, att_boom]", "[att]").replace("[none, rope]", "[none]")
    )
    (tmp_path / "tiny.yaml").write_text(space)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = abl(
        "--root", "runs", "search", "tiny.yaml", "--no-dashboard", "--tracking-uri", uri,
        cwd=tmp_path,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    warned = [line for line in out.splitlines() if "MLflowSink" in line]
    assert len(warned) == 1 and warned[0].startswith("abl: warning: MLflowSink: ")
    assert "RuntimeWarning" not in out and "warnings.warn" not in out and "View run" not in out
    assert "trials are not complete in MLflow" in out and "sync" in out
