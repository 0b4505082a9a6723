"""The task extension point: a dataset, its loss and its end-of-training metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

Split = Literal["train", "val"]


@dataclass(frozen=True)
class TaskInfo:
    """What a model needs to know about its task's tensors."""

    input_dim: int = 1  # features per time step (regression tasks)
    output_dim: int = 1  # predicted values per time step (regression tasks)
    vocab_size: int = 0  # token count (language and symbol tasks); 0 when inputs are real-valued
    block_size: int = 0  # longest sequence a model is shown


class Task(ABC):
    """A seeded dataset with a loss and final metrics.

    Subclasses set ``Config`` (a dataclass of ``data.*`` knobs, see :func:`abl.trainables.config.param`)
    and ``metrics`` (the names :meth:`final_metrics` returns), and fill ``self.info``.
    """

    Config: ClassVar[type]
    metrics: ClassVar[tuple[str, ...]] = ()
    info: TaskInfo

    def __init__(self, cfg: Any, *, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed

    @abstractmethod
    def batches(
        self, split: Split, batch_size: int, *, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(inputs, targets)`` over one pass of ``split``; shuffled when a generator is given."""

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Training and validation loss; mean squared error unless the task says otherwise."""
        return torch.nn.functional.mse_loss(output, target)

    def final_metrics(self, model: torch.nn.Module) -> dict[str, float]:
        """Metrics computed once after training (``predict/...``); none by default."""
        return {}
