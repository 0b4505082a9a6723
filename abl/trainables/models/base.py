"""The model extension point: an ``nn.Module`` built from its config and the task's info."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from abl.trainables.tasks.base import TaskInfo


class Model(nn.Module):
    """Base of every registered model.

    Subclasses set ``Config`` (a :class:`~abl.trainables.config.ComponentConfig` of ``model.*``
    knobs) and take ``(cfg, info)``.
    ``has_causal_switch`` marks models whose ``is_causal`` must keep the future out; the shared
    model test checks it for every such model.
    """

    Config: ClassVar[type]  # a ComponentConfig (or a plain dataclass of param() fields)
    has_causal_switch: ClassVar[bool] = False
    smoke: ClassVar[dict[str, Any]] = {}  # model.* overrides that make it tiny (tests, CI)

    def __init__(self, cfg: Any, info: TaskInfo) -> None:
        super().__init__()
        self.cfg = cfg
        self.info = info

    def set_step(self, step: int) -> None:
        """Called before every optimizer step (0-based); step-scheduled curricula use it."""
