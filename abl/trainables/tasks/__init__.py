"""Tasks: datasets with their loss and final metrics, registered by name (lazy imports)."""

from abl.trainables.registry import Registry

TASKS: Registry = Registry(
    "task",
    {
        "timeseries": "abl.trainables.tasks.timeseries:TimeSeriesTask",
        "charlm": "abl.trainables.tasks.charlm:CharLMTask",
        "copy": "abl.trainables.tasks.symbolic:CopyTask",
        "addition": "abl.trainables.tasks.symbolic:AdditionTask",
        "linreg": "abl.trainables.tasks.linreg:LinearRegressionTask",
    },
    {
        name: f"abl.trainables.tasks.configs:{config}"
        for name, config in {
            "timeseries": "TimeSeriesConfig",
            "charlm": "CharLMConfig",
            "copy": "CopyConfig",
            "addition": "AdditionConfig",
            "linreg": "LinearRegressionConfig",
        }.items()
    },
)

__all__ = ["TASKS"]
