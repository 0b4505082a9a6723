"""The Parquet store: atomic appends as parts, schema unification, compaction."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from abl.results import (
    HISTORY,
    TRIALS,
    PartWriter,
    TrialStatus,
    read_history,
    read_table,
    read_trials,
)
from abl.results.store import HISTORY_KEY


def part_names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_each_append_writes_one_part(tmp_path: Path) -> None:
    w = PartWriter(tmp_path / HISTORY)
    w.append([{"trial_id": "a", "step": 1, "val/loss": 2.0}])
    w.append([])  # nothing: no empty part
    w.append([{"trial_id": "a", "step": 2, "val/loss": 1.0}, {"trial_id": "b", "step": 1}])
    assert part_names(tmp_path / HISTORY) == ["part-000000.parquet", "part-000001.parquet"]
    table = read_history(tmp_path)
    assert table.column("step").to_pylist() == [1, 2, 1]
    assert table.column("val/loss").to_pylist() == [2.0, 1.0, None]


def test_read_table_unifies_schemas(tmp_path: Path) -> None:
    w = PartWriter(tmp_path / HISTORY)
    w.append([{"trial_id": "a", "step": 1, "loss": 3}])  # int column
    w.append([{"trial_id": "a", "step": 2, "loss": 2.5, "predict/mse": 0.1}])  # float, new column
    table = read_table(tmp_path / HISTORY)
    assert table.schema.field("loss").type == pa.float64()
    assert table.column("loss").to_pylist() == [3.0, 2.5]
    assert table.column("predict/mse").to_pylist() == [None, 0.1]


def test_read_table_reads_clashing_types_as_strings(tmp_path: Path) -> None:
    w = PartWriter(tmp_path / TRIALS)
    w.append([{"trial_id": "a", "model.n_head": 4}])
    w.append([{"trial_id": "b", "model.n_head": "auto"}])
    w.append([{"trial_id": "c", "model.n_head": 8}, {"trial_id": "d", "model.n_head": "x"}])
    table = read_table(tmp_path / TRIALS)
    assert table.column("model.n_head").to_pylist() == ["4", "auto", "8", "x"]


def test_missing_or_empty_folder_gives_empty_table(tmp_path: Path) -> None:
    assert read_table(tmp_path / "nothing.parquet").num_rows == 0
    (tmp_path / TRIALS).mkdir()
    assert read_trials(tmp_path).num_rows == 0


def test_compact_with_key_keeps_last_row_per_trial(tmp_path: Path) -> None:
    w = PartWriter(tmp_path / TRIALS)
    w.append([{"trial_id": "a", "status": TrialStatus.RUNNING.value}])
    w.append([{"trial_id": "b", "status": TrialStatus.RUNNING.value}])
    w.append([{"trial_id": "a", "status": TrialStatus.COMPLETED.value, "val/loss": 0.5}])
    assert read_trials(tmp_path).column("status").to_pylist() == ["completed", "running"]
    w.compact(key="trial_id")
    assert part_names(tmp_path / TRIALS) == ["part-000003.parquet"]
    table = read_table(tmp_path / TRIALS)
    assert table.column("trial_id").to_pylist() == ["a", "b"]
    assert table.column("status").to_pylist() == ["completed", "running"]
    assert table.column("val/loss").to_pylist() == [0.5, None]


def test_compact_without_key_keeps_every_row(tmp_path: Path) -> None:
    w = PartWriter(tmp_path / HISTORY)
    for step in range(3):
        w.append([{"trial_id": "a", "step": step}])
    w.compact()
    assert len(part_names(tmp_path / HISTORY)) == 1
    assert read_history(tmp_path).column("step").to_pylist() == [0, 1, 2]


def test_compacted_part_shadows_old_parts_left_behind(tmp_path: Path) -> None:
    """A crash between writing the compacted part and deleting the old ones loses nothing."""
    w = PartWriter(tmp_path / HISTORY)
    w.append([{"trial_id": "a", "step": 1}])
    w.append([{"trial_id": "a", "step": 2}])
    old = {p: p.read_bytes() for p in (tmp_path / HISTORY).iterdir()}
    w.compact()
    for path, data in old.items():  # as if the deletes never happened
        path.write_bytes(data)
    w.append([{"trial_id": "a", "step": 3}])
    assert read_history(tmp_path).column("step").to_pylist() == [1, 2, 3]


def test_reader_sees_complete_table_between_appends(tmp_path: Path) -> None:
    w = PartWriter(tmp_path / HISTORY)
    for i in range(5):
        w.append([{"trial_id": "a", "step": 10 * i + j, "x": float(i)} for j in range(10)])
        assert read_history(tmp_path).num_rows == 10 * (i + 1)
        assert not [p for p in (tmp_path / HISTORY).iterdir() if p.name.startswith(".")]
    # Every part is a valid Parquet file on its own.
    for part in (tmp_path / HISTORY).iterdir():
        assert pq.read_table(part).num_rows == 10


def test_a_step_reported_twice_is_read_once_and_compacted_once(tmp_path: Path) -> None:
    """A resumed trial re-reports the steps after its checkpoint: the last report wins."""
    w = PartWriter(tmp_path / HISTORY)
    w.append([{"trial_id": "a", "step": s, "x": 1.0} for s in (1, 2, 3)])
    w.append([{"trial_id": "a", "step": s, "x": 2.0} for s in (3, 4)])
    w.append([{"trial_id": "b", "step": 1, "x": 3.0}])
    expected = {"trial_id": ["a"] * 4 + ["b"], "step": [1, 2, 3, 4, 1], "x": [1, 1, 2, 2, 3.0]}
    assert read_history(tmp_path).select(["trial_id", "step", "x"]).to_pydict() == expected
    w.compact(key=HISTORY_KEY)
    assert len(list((tmp_path / HISTORY).iterdir())) == 1
    assert read_table(tmp_path / HISTORY).select(["trial_id", "step", "x"]).to_pydict() == expected


def test_numbering_continues_after_existing_parts(tmp_path: Path) -> None:
    PartWriter(tmp_path / TRIALS).append([{"trial_id": "a"}])
    PartWriter(tmp_path / TRIALS).append([{"trial_id": "a"}, {"trial_id": "b"}])
    assert part_names(tmp_path / TRIALS) == ["part-000000.parquet", "part-000001.parquet"]
    assert read_trials(tmp_path).column("trial_id").to_pylist() == ["a", "b"]


def test_uncompacted_parts_read_with_plain_pyarrow_and_pandas(tmp_path: Path) -> None:
    """What the README promises holds before compaction too: a trial's start row has no
    error, its end row has one; the first part's null column must not decide the type."""
    import pandas as pd

    writer = PartWriter(tmp_path / TRIALS)
    writer.append(
        [{"trial_id": "a", "status": "running", "error": None, "end": None, "val/loss": None}]
    )
    writer.append(
        [{"trial_id": "a", "status": "errored", "error": "boom", "end": 2.0, "val/loss": 1.5}]
    )
    table = pq.read_table(tmp_path / TRIALS)
    assert table.column("error").to_pylist() == [None, "boom"]
    assert table.schema.field("end").type == pa.float64()
    assert pd.read_parquet(tmp_path / TRIALS)["val/loss"].tolist()[1] == 1.5
