"""Reading and writing a run's results: the Parquet store, then aggregates and reports."""

from abl.results.store import (
    HISTORY,
    TRIALS,
    PartWriter,
    TrialStatus,
    read_history,
    read_table,
    read_trials,
)

__all__ = [
    "HISTORY",
    "TRIALS",
    "PartWriter",
    "TrialStatus",
    "read_history",
    "read_table",
    "read_trials",
]
