"""Trial packs as the store sees them: member ids, a pack's report split per member, the
statuses a resume gives Tune, and reports recovered from a pack's result.json."""

from __future__ import annotations

import json
from pathlib import Path

from abl.results.store import read_history
from abl.search.packs import (
    MEMBERS_KEY,
    member_id,
    member_results,
    members_of,
    pack_of,
    tune_statuses,
)
from abl.search.sinks.parquet import recover_reports

REPORT = {
    "val/loss": 0.5,  # the pack's best member's, for Tune
    "pack/size": 2,
    "epoch": 3,
    "training_iteration": 3,
    "timestamp": 1700000000.0,
    "members": {
        "0": {"epoch": 3, "val/loss": 0.5, "train/loss": 0.7},
        "2": {"epoch": 3, "val/loss": 0.9, "train/loss": 1.1, "trial/status": "completed"},
    },
}


def test_member_ids_name_their_pack() -> None:
    assert member_id("7c6b1_00003", 2) == "7c6b1_00003.2"
    assert pack_of("7c6b1_00003.2") == "7c6b1_00003"
    assert pack_of("7c6b1_00003") == "7c6b1_00003"  # a trial that is no pack is its own
    configs = [{"seed": 0, "train.lr": 0.1}, {"seed": 1, "train.lr": 0.01}]
    assert members_of({MEMBERS_KEY: json.dumps(configs)}) == configs
    assert members_of({"seed": 0}) is None


def test_a_pack_report_is_each_members_own_with_the_packs_ray_keys() -> None:
    split = member_results(REPORT)
    assert split is not None and sorted(split) == [0, 2]  # member 1 had stopped
    assert split[0] == {
        "epoch": 3,
        "val/loss": 0.5,
        "train/loss": 0.7,
        "training_iteration": 3,
        "timestamp": 1700000000.0,
    }
    assert split[2]["val/loss"] == 0.9 and split[2]["trial/status"] == "completed"
    assert "pack/size" not in split[0]  # the pack's own keys are no member's
    assert member_results({"val/loss": 0.5}) is None


def test_a_pack_is_unfinished_while_one_member_is() -> None:
    errored, unfinished, ended = tune_statuses(
        errored={"b.0"},
        unfinished={"a.1", "d"},
        ended={"a.0", "c.0", "c.1", "b.1", "e"},
    )
    assert unfinished == {"a", "d"}  # a.0 ended, a.1 runs on: the pack runs on
    assert errored == {"b"}
    assert ended == {"c", "e"}


def test_reports_a_killed_driver_had_not_flushed_come_back_per_member(tmp_path: Path) -> None:
    tune_dir = tmp_path / "tune"
    (tune_dir / "p_00000").mkdir(parents=True)
    lines = [
        {
            **REPORT,
            "epoch": step,
            "training_iteration": step,
            "members": {i: {**m, "epoch": step} for i, m in REPORT["members"].items()},
        }
        for step in (1, 2)
    ]
    text = "\n".join(json.dumps(r) for r in lines) + "\n"
    (tune_dir / "p_00000" / "result.json").write_text(text)
    assert recover_reports(tmp_path, tune_dir) == 4
    rows = read_history(tmp_path).to_pylist()
    got = sorted((r["trial_id"], r["step"], r["val/loss"]) for r in rows)
    assert got == [
        ("p_00000.0", 1, 0.5),
        ("p_00000.0", 2, 0.5),
        ("p_00000.2", 1, 0.9),
        ("p_00000.2", 2, 0.9),
    ]
    assert recover_reports(tmp_path, tune_dir) == 0  # each step once
