"""Secrets stay out of everything abl writes; code and servers are only reachable as documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from abl.redact import redact, redact_text
from abl.search.sinks import MLflowSink, SweepInfo

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "abl-test-secret-aws-9f3k",
    "HF_TOKEN": "hf_abltestsecret77",
    "MLFLOW_TRACKING_PASSWORD": "abl-test-secret-mlflow-pw",
    "WANDB_API_KEY": "abl-test-secret-wandb-k2",
}
TINY = [
    "model.pe_type=none,rope", "model.is_causal=true", "repeats=1", "train.epochs=1",
    "data.length=300", "data.time_steps=16", "model.d_model=8",
]  # fmt: skip


@pytest.mark.ray
def test_environment_secrets_never_reach_params_tags_reports_or_files(tmp_path: Path) -> None:
    env = {**os.environ, **SECRETS}
    proc = subprocess.run(
        [sys.executable, "-m", "abl", "--root", "runs", "search", "quickstart", *TINY,
         "--no-dashboard"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in files) and any(p.suffix == ".db" for p in files)
    for secret in SECRETS.values():
        assert secret not in proc.stdout + proc.stderr
        leaked = [p for p in files if secret.encode() in p.read_bytes()]
        assert not leaked, f"{secret} written to {leaked}"
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3  # the parent and two trials
    for run in runs:
        text = json.dumps([run.data.params, run.data.tags])
        assert not any(s in text for s in SECRETS.values())


def test_a_tracking_uri_password_is_never_written_to_the_run_dir(tmp_path: Path) -> None:
    uri = "http://alice:s3cr3t-pw@127.0.0.1:9/"  # nothing listens on port 9: the sink warns
    sweep = SweepInfo(
        name="s", run_dir=tmp_path, metric="val/loss", mode="min",
        space_file=tmp_path / "space.yaml", total_trials=1, tracking_uri=uri,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sink = MLflowSink(tracking_uri=uri, retry_s=0)
        sink.open(sweep)
        sink.close()
    saved = (tmp_path / "mlflow.json").read_text()
    assert "s3cr3t-pw" not in saved
    said = [str(w.message) for w in caught if "MLflowSink" in str(w.message)]
    assert said and "alice:***@127.0.0.1:9" in said[0]  # the client's error quotes the URL
    assert not any("s3cr3t-pw" in text for text in said)
    assert json.loads(saved)["tracking_uri"] == "http://alice:***@127.0.0.1:9/" == redact(uri)


def test_resume_asks_for_a_redacted_tracking_uri_instead_of_guessing(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "s" / "2026-01-01_00-00-00"
    (run / "tune").mkdir(parents=True)
    (run / "tune" / "tuner.pkl").write_bytes(b"")
    (run / "space.yaml").write_text("name: s\ntrainable: forecast\n")
    (run / "mlflow.json").write_text(json.dumps({"tracking_uri": "http://alice:***@db:5000"}))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(
        [sys.executable, "-m", "abl", "--root", "runs", "search", "--resume", "s"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "password abl does not store" in proc.stderr


def test_redact_text_masks_every_password_in_a_message_and_nothing_else() -> None:
    text = (
        "request to http://alice:s3cr3t-pw@127.0.0.1:9/api failed; "
        "store postgresql://abl:p%40ss@db:5432/mlflow; see https://example.com/a@b, s3://b/k"
    )
    assert redact_text(text) == (
        "request to http://alice:***@127.0.0.1:9/api failed; "
        "store postgresql://abl:***@db:5432/mlflow; see https://example.com/a@b, s3://b/k"
    )
