"""``abl nightly`` end to end: three real nightlies of a tiny space on Ray, MLflow and Parquet.

The first is the baseline, the second reruns it unchanged (exit 0), the third plants a
regression (a learning rate too small to learn anything): its digest names it and the exit
status is 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from abl.search.nightly import NIGHTLY_JSON

TINY = """
rules: {{regression_pct: 5, regression_std: 3}}
spaces:
  - space: quickstart
    overrides:
      - data.length=300
      - data.time_steps=16
      - model.d_model=8
      - model.is_causal=true
      - model.pe_type=none,rope
      - train.epochs=2
      - repeats=2
{extra}
"""
PLANTED = "      - train.lr=1.0e-7"


def nightly(tmp: Path, extra: str = "", *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp / "nightly.yaml"
    config.write_text(TINY.format(extra=extra))
    return subprocess.run(
        [sys.executable, "-m", "abl", "--root", "runs", "nightly", str(config), *args],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
    )


def digest_of(proc: subprocess.CompletedProcess[str], tmp: Path) -> dict:
    line = next(x for x in proc.stdout.splitlines() if x.startswith("digest"))
    return json.loads((tmp / line.split()[1]).with_name("digest.json").read_text())


@pytest.fixture(scope="module")
def nightlies(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nightly")
    return tmp, [nightly(tmp), nightly(tmp), nightly(tmp, PLANTED)]


@pytest.mark.ray
def test_first_nightly_is_the_baseline_and_exits_0(nightlies):
    tmp, (first, _, _) = nightlies
    assert first.returncode == 0, first.stdout + first.stderr
    (space,) = digest_of(first, tmp)["spaces"]
    assert space["previous"] is None and not space["fired"]
    assert any("baseline" in note for note in space["notes"])


@pytest.mark.ray
def test_an_unchanged_nightly_fires_nothing_and_exits_0(nightlies):
    tmp, (first, second, _) = nightlies
    assert second.returncode == 0, second.stdout + second.stderr
    (space,) = digest_of(second, tmp)["spaces"]
    assert space["previous"] == digest_of(first, tmp)["spaces"][0]["run_dir"]
    assert space["findings"] == []
    arms = {a["arm"]: a for a in space["arms"]}
    assert {"model.pe_type=none", "model.pe_type=rope", "(best arm)"} <= set(arms)
    assert all(a["n"] == 2 and abs(a["worse_pct"]) < 5 for a in arms.values())


@pytest.mark.ray
def test_a_planted_regression_is_named_in_the_digest_and_exits_1(nightlies):
    tmp, (_, second, third) = nightlies
    assert third.returncode == 1, third.stdout + third.stderr
    (space,) = digest_of(third, tmp)["spaces"]
    assert space["previous"] == digest_of(second, tmp)["spaces"][0]["run_dir"]
    regressions = [f["message"] for f in space["findings"] if f["rule"] == "regression"]
    assert any(m.startswith("model.pe_type=rope: val/loss") for m in regressions), regressions
    assert any(m.startswith("(best arm): val/loss") for m in regressions), regressions
    assert "FIRED" in third.stdout and "regression: model.pe_type=" in third.stdout
    markdown = (tmp / third.stdout.split("digest   ")[1].split()[0]).read_text()
    assert markdown.splitlines()[0].endswith(f"{len(space['findings'])} findings")
    assert "**regression**: model.pe_type=rope: val/loss" in markdown


@pytest.mark.ray
def test_runs_are_marked_and_every_digest_is_an_mlflow_run(nightlies):
    tmp, _ = nightlies
    runs = sorted((tmp / "runs" / "quickstart").iterdir())
    marks = [json.loads((r / NIGHTLY_JSON).read_text()) for r in runs]
    assert [m["fired"] for m in marks] == [False, False, True]
    client = MlflowClient(f"sqlite:///{tmp / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("nightly")
    logged = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.data.tags["abl.nightly.fired"] for r in logged] == ["false", "false", "true"]
    assert [r.data.metrics["nightly/rules_fired"] > 0 for r in logged] == [False, False, True]
    files = {f.path for f in client.list_artifacts(logged[-1].info.run_id, "digest")}
    assert {"digest/digest.md", "digest/digest.html", "digest/digest.json"} <= files


def test_dry_run_runs_nothing_and_names_the_baseline(tmp_path):
    proc = nightly(tmp_path, "", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "quickstart: 4 trials of 'forecast'" in proc.stdout
    assert "none (this run becomes the baseline)" in proc.stdout
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            "spaces: [{space: quickstart, overides: []}]",
            ["unknown key 'spaces.0.overides'", "did you mean 'spaces.0.overrides'"],
        ),
        (
            "rules: {regression_pc: 5}\nspaces: [{space: quickstart}]",
            ["unknown key 'rules.regression_pc'", "allowed here: metric, regression_pct"],
        ),
        (
            "spaces: [{space: quickstart, rules: {importance_method: anvoa}}]",
            ["importance_method", "must be one of anova, fanova", "spaces.0.rules"],
        ),
        (
            "spaces: [{space: quickstart, overrides: [model.pe_typ=rope]}]",
            ["did you mean 'model.pe_type'", "spaces.0"],
        ),
        (
            "spaces: [{space: quickstart}, {space: quickstart}]",
            ["its own name", "spaces.0 and spaces.1"],
        ),
        ("spaces: []", ["spaces", "at least 1"]),
    ],
)
def test_a_bad_config_is_one_line_and_exit_2(tmp_path, text, fragments):
    (tmp_path / "bad.yaml").write_text(text + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "abl", "--root", "runs", "nightly", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abl: error: ") and "bad.yaml" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    assert not (tmp_path / "runs").exists()
