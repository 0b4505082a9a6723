"""Sinks: where a sweep's trials and reports go while it runs (MLflow, Parquet, terminal).

MLflow is heavy to import, so :class:`MLflowSink` is loaded on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from abl.search.sinks.base import Sink, SinkCallback, SweepInfo, TrialRecord
from abl.search.sinks.parquet import ParquetSink
from abl.search.sinks.progress import ProgressSink

if TYPE_CHECKING:
    from abl.search.sinks.mlflow import MLflowSink

__all__ = [
    "MLflowSink",
    "ParquetSink",
    "ProgressSink",
    "Sink",
    "SinkCallback",
    "SweepInfo",
    "TrialRecord",
]


def __getattr__(name: str) -> Any:
    if name == "MLflowSink":
        from abl.search.sinks.mlflow import MLflowSink

        return MLflowSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
