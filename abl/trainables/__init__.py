"""What trials run: models, tasks, the training loop, and the registries a plug-in adds to.

A plug-in model in a module that a space names in ``plugins:``::

    from pydantic import Field
    from torch import nn
    from abl.trainables import MODELS, ComponentConfig, Model

    class MLPConfig(ComponentConfig):
        hidden: int = Field(32, ge=1, description="hidden units")

    @MODELS.register("mlp")
    class MLP(Model):
        Config = MLPConfig

        def __init__(self, cfg, info):  # info: the task's TaskInfo
            super().__init__(cfg, info)
            self.net = nn.Linear(info.input_dim, info.output_dim)

A task subclasses :class:`Task` and registers with ``@TASKS.register(...)``; a trainable pairs
a task with models: ``TRAINABLES.register("mine")(TrainableSpec(...))``.

Importing this package imports neither torch nor pydantic: every name but the registries
loads on first use (``abl --help`` stays fast; ``Model``, ``Task`` and ``TaskInfo`` bring torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from abl.trainables.models import MODELS
from abl.trainables.tasks import TASKS

if TYPE_CHECKING:
    from abl.trainables.config import ComponentConfig, build, param
    from abl.trainables.loop import train
    from abl.trainables.models.base import Model
    from abl.trainables.pack import train_pack
    from abl.trainables.registry import Registry
    from abl.trainables.spec import TRAINABLES, TrainableSpec
    from abl.trainables.tasks.base import Task, TaskInfo
    from abl.trainables.train_config import TrainConfig

_LAZY = {
    "ComponentConfig": "abl.trainables.config",
    "Model": "abl.trainables.models.base",
    "Registry": "abl.trainables.registry",
    "TRAINABLES": "abl.trainables.spec",
    "Task": "abl.trainables.tasks.base",
    "TaskInfo": "abl.trainables.tasks.base",
    "TrainConfig": "abl.trainables.train_config",
    "TrainableSpec": "abl.trainables.spec",
    "build": "abl.trainables.config",
    "param": "abl.trainables.config",
    "train": "abl.trainables.loop",
    "train_pack": "abl.trainables.pack",
}

__all__ = [
    "MODELS",
    "TASKS",
    "TRAINABLES",
    "ComponentConfig",
    "Model",
    "Registry",
    "Task",
    "TaskInfo",
    "TrainConfig",
    "TrainableSpec",
    "build",
    "param",
    "train",
    "train_pack",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'abl.trainables' has no attribute '{name}'")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
