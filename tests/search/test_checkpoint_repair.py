"""repair_checkpoints leaves a snapshot it cannot read as it is."""

from __future__ import annotations

import json
from pathlib import Path

from abl.search._checkpoints import CheckpointRepair, repair_checkpoints


def test_a_snapshot_whose_checkpoint_manager_cannot_be_decoded_is_left_untouched(
    tmp_path: Path,
) -> None:
    tune = tmp_path / "tune"
    (tune / "t1").mkdir(parents=True)
    blob = {"_type": "CLOUDPICKLE_FALLBACK", "value": "00ff"}  # not a pickle
    trial = {"trial_id": "t1", "status": "RUNNING", "storage": blob}
    meta = {"checkpoint_manager": blob, "last_result": {"checkpoint_dir_name": "checkpoint_1"}}
    snapshot = tune / "experiment_state-2024-05-01_12-00-00.json"
    text = json.dumps({"trial_data": [[json.dumps(trial), json.dumps(meta)]]})
    snapshot.write_text(text)
    assert repair_checkpoints(tmp_path, errored=True) == []
    assert snapshot.read_text() == text


def test_the_lines_say_which_checkpoint_a_trial_continues_from() -> None:
    assert CheckpointRepair("t1", "checkpoint_000001", "checkpoint_000003", 4).line() == (
        "trial t1: checkpoint_000001 is gone from storage; continues from checkpoint_000003, "
        "saved at epoch 4"
    )
    assert CheckpointRepair("t1", "checkpoint_000001", None).line() == (
        "trial t1: checkpoint_000001 is gone from storage and no checkpoint is left; "
        "starts again from epoch 1"
    )
