"""Recognizing a full disk, and Tune's state files kept and put back whole."""

from __future__ import annotations

import errno
import json
import os
import pickle
import time
from pathlib import Path

from abl.search.disk import GOOD_DIR, StateKeeper, broken_state, is_disk_full, repair_state


def test_a_full_disk_is_recognized_by_errno_chain_or_text() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    try:
        try:
            raise OSError(errno.EFBIG, "File too large")
        except OSError as exc:
            raise RuntimeError("writing the checkpoint failed") from exc
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert is_disk_full("OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] ...")
    assert is_disk_full("(sqlite3.OperationalError) database or disk is full")
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full("ValueError: boom")
    assert not is_disk_full(None)


def _write_state(tune: Path, trials: list[str]) -> None:
    (tune / "experiment_state-s.json").write_text(json.dumps({"trial_data": trials}))
    (tune / "basic-variant-state-s.json").write_bytes(pickle.dumps({"live": trials}))
    old = time.time() - 5  # settled: Tune is not writing them now
    for p in tune.glob("*-s.json"):
        os.utime(p, (old, old))


def test_the_last_complete_set_is_kept_and_put_back_when_one_is_cut_short(tmp_path: Path) -> None:
    tune = tmp_path / "tune"
    tune.mkdir()
    keeper = StateKeeper(tune)
    _write_state(tune, ["a"])
    keeper.keep()
    _write_state(tune, ["a", "b"])
    keeper.keep()
    assert json.loads((tune / GOOD_DIR / "experiment_state-s.json").read_text())["trial_data"] == [
        "a",
        "b",
    ]
    assert broken_state(tune) == [] and repair_state(tune) == []

    # The disk fills while Tune writes: the snapshot is cut short, the searcher's is newer.
    state = tune / "experiment_state-s.json"
    state.write_text(json.dumps({"trial_data": ["a", "b", "c"]})[:20])
    (tune / "basic-variant-state-s.json").write_bytes(pickle.dumps({"live": ["a", "b", "c"]}))
    keeper.keep()  # a set with a broken file is not kept
    assert broken_state(tune) == ["experiment_state-s.json"]
    assert repair_state(tune) == ["basic-variant-state-s.json", "experiment_state-s.json"]
    assert json.loads(state.read_text())["trial_data"] == ["a", "b"]
    searcher = pickle.loads((tune / "basic-variant-state-s.json").read_bytes())
    assert searcher == {"live": ["a", "b"]}  # the pair is put back as it was kept
    assert broken_state(tune) == []
