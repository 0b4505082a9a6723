"""The run directory's Parquet store: ``trials.parquet`` and ``history.parquet``.

Each store is a Parquet *dataset folder* of part files, so that appending is atomic: a part is
written under a hidden temporary name and renamed into place, and a reader that lists the
folder between two appends sees a complete table. Only the driver writes (one writer per
store); reports are read back without Ray or MLflow::

    from abl.results.store import read_trials
    trials = read_trials(Path("abl-runs/bigram-pe/2024-05-01T12-00-00"))
    print(trials.select(["trial_id", "status", "val/loss"]).to_pandas())

Compaction rewrites every part into one. The new part is marked ``abl.compacted`` in its schema
metadata and replaces every lower-numbered part, so a reader never counts a row twice, even
while the old parts are being deleted or when a crash left them behind.
"""

from __future__ import annotations

import numbers
import os
import re
from enum import Enum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from abl.rundir import HISTORY, TRIALS

HISTORY_KEY = ("trial_id", "step")  # one report per trial and step

_PART = re.compile(r"^part-(\d{6,})\.parquet$")
_COMPACTED = b"abl.compacted"


class TrialStatus(str, Enum):
    """Where a trial stands; stored as its string value in the ``status`` column."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    PRUNED = "pruned"  # stopped early by the scheduler
    DIVERGED = "diverged"  # the trainable reported a non-finite loss and gave up
    ERRORED = "errored"  # the trainable raised


def _parts(path: Path) -> list[tuple[int, Path]]:
    """The part files of a dataset folder as ``(number, path)``, in number order."""
    if not path.is_dir():
        return []
    found = [(int(m.group(1)), path / m.group(0)) for m in map(_PART.match, os.listdir(path)) if m]
    return sorted(found)


def _is_numeric(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _column(values: list[Any]) -> list[Any]:
    """Values for one Arrow column; mixed types (other than int with float) become strings."""
    kinds = {type(v) for v in values if v is not None}
    if len(kinds) <= 1 or all(_is_numeric(v) for v in values if v is not None):
        return values
    return [None if v is None else str(v) for v in values]


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Build a table from dict rows; columns are the union of keys, in first-seen order."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    return pa.table({n: _column([row.get(n) for row in rows]) for n in names})


def last_per_key(table: pa.Table, key: str | tuple[str, ...]) -> pa.Table:
    """Keep the last row for every value of ``key`` (one column or several), in first-seen order."""
    keys = (key,) if isinstance(key, str) else tuple(key)
    if table.num_rows == 0 or any(k not in table.column_names for k in keys):
        return table
    index = pa.array(range(table.num_rows), type=pa.int64())
    groups = (
        pa.table({**{k: table.column(k) for k in keys}, "_i": index})
        .group_by(list(keys), use_threads=False)
        .aggregate([("_i", "min"), ("_i", "max")])
        .sort_by("_i_min")
    )
    return table.take(groups.column("_i_max"))


def _unify(tables: list[pa.Table]) -> pa.Table:
    """Concatenate tables; columns whose types cannot be promoted are read as strings."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        types: dict[str, set[pa.DataType]] = {}
        for t in tables:
            for field in t.schema:
                types.setdefault(field.name, set()).add(field.type)
        clash = {n for n, ts in types.items() if len({t for t in ts if t != pa.null()}) > 1}
        fixed = [_cast_columns(t, clash, pa.string()) for t in tables]
        return pa.concat_tables(fixed, promote_options="permissive")


def _cast_columns(table: pa.Table, names: set[str], to: pa.DataType) -> pa.Table:
    for i, field in enumerate(table.schema):
        if field.name in names and field.type != to:
            table = table.set_column(i, field.name, table.column(i).cast(to))
    return table


def read_table(path: Path) -> pa.Table:
    """Read every part of a dataset folder into one table (empty if the folder is missing).

    Parts written with different columns are unified: a column missing in a part is null
    there, and int columns are promoted to float where another part holds floats.
    """
    tables: list[pa.Table] = []
    for _, part in reversed(_parts(Path(path))):
        table = pq.read_table(part)
        compacted = (table.schema.metadata or {}).get(_COMPACTED) is not None
        tables.append(table.replace_schema_metadata(None))
        if compacted:  # it holds every row of the lower-numbered parts
            break
    if not tables:
        return pa.table({})
    return _unify(tables[::-1])


def read_trials(run_dir: Path) -> pa.Table:
    """The trials of a run: the latest row per ``trial_id``."""
    return last_per_key(read_table(Path(run_dir) / TRIALS), "trial_id")


def read_history(run_dir: Path) -> pa.Table:
    """Every report of every trial of a run: ``trial_id``, ``step``, ``time``, metrics.

    A step reported twice (a trial resumed from an earlier checkpoint) counts once: the last.
    """
    return last_per_key(read_table(Path(run_dir) / HISTORY), HISTORY_KEY)


# Columns that hold numbers whenever they hold anything (metrics have a "/" in their name).
_NUMERIC = frozenset(
    ("start", "end", "wall_s", "paused_s", "steps", "best_step", "step", "time", "seed")
)


def typed_nulls(table: pa.Table) -> pa.Table:
    """Give every all-null column the type its values have when present: float64 for times,
    counts and metrics, string otherwise. A part with a null-typed ``error`` column beside
    one with strings made ``pyarrow.parquet.read_table(folder)`` and ``pandas.read_parquet``
    fail ("Unsupported cast from string to null") before compaction."""
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type):
            numeric = field.name in _NUMERIC or "/" in field.name
            table = table.set_column(
                i, field.name, table.column(i).cast(pa.float64() if numeric else pa.string())
            )
    return table


class PartWriter:
    """Appends part files to one dataset folder; the only writer of that folder.

    >>> w = PartWriter(run_dir / HISTORY)        # doctest: +SKIP
    >>> w.append([{"trial_id": "a", "step": 1, "time": 0.0, "val/loss": 1.5}])  # doctest: +SKIP
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        parts = _parts(self.path)
        # Numbering continues after existing parts, so a resumed run appends.
        self._next = parts[-1][0] + 1 if parts else 0

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` as one new part (nothing for an empty list)."""
        if rows:
            self._write(rows_to_table(rows))

    def compact(self, *, key: str | tuple[str, ...] | None = None) -> None:
        """Rewrite all parts into one; with ``key``, keep only the last row per key value."""
        parts = _parts(self.path)
        if not parts or (len(parts) == 1 and key is None):
            return
        table = read_table(self.path)
        if key is not None:
            table = last_per_key(table, key)
        self._write(table.replace_schema_metadata({_COMPACTED: b"1"}))
        for _, part in parts:  # the new part already shadows these
            part.unlink(missing_ok=True)

    def _write(self, table: pa.Table) -> None:
        table = typed_nulls(table)
        self.path.mkdir(parents=True, exist_ok=True)
        name = f"part-{self._next:06d}.parquet"
        tmp = self.path / f".{name}.tmp"  # hidden: dataset readers skip dot files
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, self.path / name)
        finally:
            tmp.unlink(missing_ok=True)
        self._next += 1
