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
    output_len: int = 0  # target length when it differs from the input's (seq2seq); 0 = same


class Task(ABC):
    """A seeded dataset with a loss and final metrics.

    Subclasses set ``Config`` (a :class:`~abl.trainables.config.ComponentConfig` of ``data.*`` knobs)
    and ``metrics`` (every name :meth:`epoch_metrics` and :meth:`final_metrics` return), and
    fill ``self.info``. Curricula read the optimizer step in :meth:`set_step` and the last
    epoch's metrics in :meth:`observe`; :meth:`state` keeps them across a resume.

    Two seeds: ``seed`` (the trial's) drives training draws without a generator; a task whose
    data or validation set is random draws them from its ``data.seed`` field
    (:func:`~abl.trainables.tasks.configs.data_seed`), so every trial of a sweep is scored on the same validation data.
    """

    Config: ClassVar[type]  # a ComponentConfig (or a plain dataclass of param() fields)
    metrics: ClassVar[tuple[str, ...]] = ()
    smoke: ClassVar[dict[str, Any]] = {}  # data.* overrides that make a trial tiny (tests, CI)
    # True when outputs are per position and aligned with next-step targets (output t predicts
    # input t + 1): the loop then also reports val/loss_last, the loss at the last position of
    # each window, which no model can see inside its window.
    next_step_targets: ClassVar[bool] = False
    info: TaskInfo

    def __init__(self, cfg: Any, *, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed

    @abstractmethod
    def batches(
        self, split: Split, batch_size: int, *, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(inputs, targets)`` over one pass of ``split``; shuffled when a generator is given."""

    def num_batches(self, split: Split, batch_size: int) -> int:
        """Batches in one pass of ``split``; counts them unless a task knows better."""
        return sum(1 for _ in self.batches(split, batch_size))

    def set_step(self, step: int) -> None:
        """Called before every optimizer step (0-based); step-scheduled curricula use it."""

    def observe(self, metrics: dict[str, float]) -> None:
        """Called after every epoch with its metrics; accuracy-driven curricula use it."""

    def state(self) -> dict[str, Any]:
        """What a curriculum has learnt so far; saved in every checkpoint."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` when a trial resumes from a checkpoint."""

    def epoch_metrics(self, model: torch.nn.Module) -> dict[str, float]:
        """Metrics computed after every epoch besides the losses (``val/acc_token``); none by default."""
        return {}

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Training and validation loss; mean squared error unless the task says otherwise."""
        return torch.nn.functional.mse_loss(output, target)

    def final_metrics(self, model: torch.nn.Module) -> dict[str, float]:
        """Metrics computed once after training (``predict/...``); none by default."""
        return {}
