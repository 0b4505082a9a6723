"""Tasks: datasets with their loss and final metrics, registered by name (lazy imports)."""

from abl.trainables.registry import Registry

TASKS: Registry = Registry(
    "task",
    {
        "timeseries": "abl.trainables.tasks.timeseries:TimeSeriesTask",
        "charlm": "abl.trainables.tasks.charlm:CharLMTask",
    },
)

__all__ = ["TASKS"]
