"""Trial packs through ``abl search`` on real Ray: eight trials in two Ray trials, killed
(SIGKILL of the driver) half-way and resumed, and still eight trials in Parquet and MLflow,
each with the metrics it has when trained alone."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from abl.results.store import read_history, read_trials
from abl.trainables import TRAINABLES, train
from tests.e2e.faults import (
    Sweep,
    abl,
    check_complete,
    check_mlflow,
    first_step_after,
    kill_driver_when,
    progress,
    run_dir,
    statuses,
)

pytestmark = pytest.mark.ray

SPACE = """
name: rel
trainable: forecast
fixed:
  model.d_model: 16
  data.length: 16000
  data.time_steps: 32
  train.epochs: 6
  train.batch_size: 64
  train.checkpoint_every_s: 0  # after every epoch: the kill lands between checkpoints
grid:
  model.pe_type: [none, rope]
  train.lr: [0.001, 0.003]   # per member: packed with the seeds
repeats: 2
pack: 4
resources: {cpu: 1}
search: {concurrency: 2}
"""


def test_a_pack_is_its_members_downstream_and_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "rel.yaml").write_text(SPACE)
    sweep = Sweep(tmp_path, "search", "rel.yaml")
    run = run_dir(tmp_path)

    def half_way() -> list[str]:  # members running past epoch 1, an epoch to go
        status = statuses(run)
        return [k for k, s in progress(run).items() if status[k] == "running" and 2 <= s < 6]

    in_flight, killed_at = kill_driver_when("a pack half-way", sweep, half_way)
    sweep.wait()
    resumed = abl(tmp_path, "search", "--resume", "rel", "--no-dashboard")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    # Eight trials downstream, one row and six steps each; two Ray trials ran them.
    check_complete(run, trials=8)
    children = check_mlflow(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}", n=8)
    rows = read_trials(run).to_pylist()
    packs = {r["trial_id"].rsplit(".", 1)[0] for r in rows}
    assert len(packs) == 2 and {p.name for p in (run / "tune").iterdir() if p.is_dir()} >= packs
    assert {c.data.tags["abl.trial_id"] for c in children} == {r["trial_id"] for r in rows}
    cells = {(r["model.pe_type"], r["train.lr"], r["seed"]) for r in rows}
    assert len(cells) == 8  # every (PE, lr, seed) once
    for trial_id in in_flight:  # continued from the pack's checkpoint, not from epoch 1
        assert first_step_after(run, trial_id, killed_at) > 1

    # A member, killed and resumed or not, reports what it reports trained alone.
    history = read_history(run).to_pylist()
    for row in (rows[0], next(r for r in rows if r["trial_id"] in in_flight)):
        config = {
            k: v
            for k, v in row.items()
            if k.split(".")[0] in ("model", "data", "train") and v is not None
        }
        alone: list[float] = []
        train(
            {**config, "seed": row["seed"]},
            trainable=TRAINABLES.get("forecast"),
            report=lambda m, _ckpt, out=alone: out.append(m["val/loss"]),
        )
        packed = [h["val/loss"] for h in sorted(history, key=lambda h: h["step"])
                  if h["trial_id"] == row["trial_id"]]  # fmt: skip
        assert len(packed) == len(alone) == 6
        assert all(math.isclose(a, b, rel_tol=1e-4) for a, b in zip(packed, alone, strict=True))
