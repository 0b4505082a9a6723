"""In-context linear regression (Garg et al. 2022; logbook 004's looped transformer).

Every prompt draws its own weights ``w ~ N(0, I_d)`` and points ``x_i ~ N(0, I_d)`` with
``y_i = w · x_i``; the model sees ``x_1, y_1, ..., x_n, y_n`` as ``2n`` tokens and predicts
``y_i`` at the position of ``x_i`` (it has seen the ``i - 1`` earlier pairs). Tokens are
``n_dims + 1`` wide: an x token is ``(x_i, 0)``, a y token ``(0, ..., 0, y_i)``. (The logbook's
code writes ``y_i`` into the first coordinate of an ``n_dims``-wide token instead; the extra
column keeps the two kinds of token apart without relying on positions.)

Two step-scheduled curricula (:class:`~abl.trainables.curriculum.Schedule`) grow the prompts:
the dimension ``d`` (coordinates of ``x`` beyond the current ``d`` are zero) and the number of
points ``n``. Training data is drawn fresh for every batch (from the trial's generator);
validation is ``val_batches`` fixed batches at the final ``d`` and ``n`` drawn from
``data.seed``, identical every epoch and for every trial of a sweep. The last step seen is
checkpointed, so a resumed trial continues both curricula where it stopped.

Example::

    from abl.trainables.config import build
    task = LinearRegressionTask(build(LinearRegressionConfig, {}, section="data"), seed=0)
    x, y = next(iter(task.batches("train", 64)))  # (64, 22, 11) tokens, (64, 11, 1) targets
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from abl.errors import AblError
from abl.trainables.curriculum import Schedule
from abl.trainables.tasks.base import Split, Task, TaskInfo
from abl.trainables.tasks.configs import LinearRegressionConfig

_VAL_SEED_OFFSET = 1_000_003  # keeps the validation stream apart from the training one


def interleave(xs: Tensor, ys: Tensor) -> Tensor:
    """``(B, n, d)`` points and ``(B, n, 1)`` values -> ``(B, 2n, d + 1)`` prompt tokens.

    Token ``2i`` is ``(x_i, 0)``, token ``2i + 1`` is ``(0, ..., 0, y_i)``.
    """
    b, n, d = xs.shape
    tokens = xs.new_zeros(b, 2 * n, d + 1)
    tokens[:, 0::2, :d] = xs
    tokens[:, 1::2, d:] = ys
    return tokens


def _schedule(cfg: LinearRegressionConfig, name: str) -> Schedule:
    values = [getattr(cfg, f"{name}_{part}") for part in ("start", "end", "inc", "interval")]
    try:
        return Schedule(*values)
    except AblError as exc:
        raise AblError(f"{exc} (data.{name}_*)") from None


class LinearRegressionTask(Task):
    """Predict ``y_i = w · x_i`` at every ``x_i`` of a prompt, ``w`` fresh for every prompt.

    ``loss`` is the MSE of the predictions read at the x tokens (even positions). A model may
    stack ``k`` predictions of the same batch along the batch axis (``(k*B, 2n, 1)``, e.g. one
    per loop of a looped transformer); the loss then averages over all ``k``.
    ``epoch_metrics`` report the squared error divided by ``d`` (1.0 = predicting zero):
    averaged over all positions (``val/mse_per_dim``) and at the last point
    (``val/mse_last_point``).
    """

    Config = LinearRegressionConfig
    metrics = LinearRegressionConfig.task_metrics
    smoke: ClassVar[dict[str, Any]] = {
        "data.n_dims": 4,
        "data.dims_start": 2,
        "data.dims_end": 4,
        "data.dims_interval": 2,
        "data.points_start": 3,
        "data.points_end": 6,
        "data.points_inc": 1,
        "data.points_interval": 2,
        "data.epoch_batches": 4,
        "data.val_batches": 2,
    }

    def __init__(self, cfg: LinearRegressionConfig, *, seed: int) -> None:
        super().__init__(cfg, seed=seed)
        self.dims = _schedule(cfg, "dims")
        self.points = _schedule(cfg, "points")
        _check_config(cfg)
        self.step = -1  # the last step given to set_step; batches are drawn for the next one
        self._batch_size = 64  # the training batch size, reused by epoch_metrics
        self.info = TaskInfo(
            input_dim=cfg.n_dims + 1,
            output_dim=1,
            block_size=2 * max(cfg.points_start, cfg.points_end),
        )

    def curriculum(self, step: int) -> tuple[int, int]:
        """``(d, n)`` of the prompts trained on at optimizer step ``step``."""
        return self.dims.value(step), self.points.value(step)

    def set_step(self, step: int) -> None:
        self.step = step

    def state(self) -> dict[str, Any]:
        """The last optimizer step seen: the curricula's position."""
        return {"step": self.step}

    def load_state(self, state: dict[str, Any]) -> None:
        self.step = int(state.get("step", self.step))

    def num_batches(self, split: Split, batch_size: int) -> int:
        return self.cfg.epoch_batches if split == "train" else self.cfg.val_batches

    def sample(
        self, batch: int, dims: int, points: int, gen: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """``batch`` prompts of ``points`` points in ``dims`` dimensions: ``(tokens, y)``."""
        xs = torch.randn(batch, points, self.cfg.n_dims, generator=gen)
        xs[:, :, dims:] = 0.0
        w = torch.randn(batch, self.cfg.n_dims, 1, generator=gen)
        ys = xs @ w  # (batch, points, 1)
        return interleave(xs, ys), ys

    def batches(
        self, split: Split, batch_size: int, *, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(tokens, y)``: ``(B, 2n, n_dims + 1)`` and ``(B, n, 1)`` float32.

        Validation is seeded by ``data.seed`` alone. Training draws from ``generator`` (the
        loop's, so a resumed trial continues its stream) or, without one, from the task's seed;
        each batch uses the curriculum of the step after the last :meth:`set_step` (the loop
        fetches a batch before it announces that batch's step).
        """
        if split == "val":
            gen = torch.Generator().manual_seed(self.cfg.seed + _VAL_SEED_OFFSET)
            for _ in range(self.cfg.val_batches):
                yield self.sample(batch_size, self.cfg.dims_end, self.cfg.points_end, gen)
            return
        self._batch_size = batch_size
        gen = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        for _ in range(self.cfg.epoch_batches):
            dims, points = self.curriculum(self.step + 1)
            yield self.sample(batch_size, dims, points, gen)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """MSE of the predictions at the x tokens; ``k`` stacked predictions share one target."""
        pred = output[:, 0::2]
        k, rest = divmod(pred.shape[0], target.shape[0])
        if rest or k < 1:
            raise ValueError(
                f"output batch {pred.shape[0]} must be a multiple of the target batch {target.shape[0]}"
            )
        if k > 1:
            target = target.repeat(k, *([1] * (target.dim() - 1)))
        return F.mse_loss(pred, target)

    @torch.no_grad()
    def epoch_metrics(self, model: torch.nn.Module) -> dict[str, float]:
        """Squared error over ``d`` on the validation prompts: all points, and the last one."""
        was_training = model.training
        model.eval()
        device = next(iter(model.parameters()), torch.empty(0)).device
        errors = []
        try:
            for x, y in self.batches("val", self._batch_size):
                pred = model(x.to(device))[:, 0::2].float().cpu()
                errors.append((pred - y).square()[..., 0])
        finally:
            model.train(was_training)
        err = torch.cat(errors) / self.cfg.dims_end  # (prompts, points)
        return {
            "val/mse_per_dim": float(err.mean()),
            "val/mse_last_point": float(err[:, -1].mean()),
        }


def _check_config(cfg: LinearRegressionConfig) -> None:
    if max(cfg.dims_start, cfg.dims_end) > cfg.n_dims:
        raise AblError(
            f"dims_start and dims_end must lie in [1, n_dims={cfg.n_dims}]; got "
            f"{(cfg.dims_start, cfg.dims_end)} (data.dims_start, data.dims_end)"
        )
