"""Symbolic sequence tasks of logbook 002: copy (flip, roll) a digit string, add two numbers.

Tokens are the digits ``0..base-1`` followed by ``PAD = base``, ``EOS = base + 1`` and
``SEP = base + 2`` (vocab ``base + 3``). Inputs are ``(B, T_in)`` and targets ``(B, T_out)``
Long tensors padded with PAD, which the loss ignores; a target ends with EOS, so the model also
says where the answer stops. Training data is drawn on the fly (from the trial's generator);
validation is a fixed set at the full length drawn from ``data.seed``, so every trial of a sweep
is scored on the same set. It is held out: a training sample whose input is a validation input
is drawn again (addition has only ``(max_value + 1)**2`` operand pairs, so without this a long
run trains on a large share of its validation sums; copy strings rarely repeat, the same rule
costs nothing).

The sequence-length curriculum (logbook 002, 21-22 Dec): ``none`` trains at the full length,
``uniform`` draws each sample's length uniformly in ``[min_len, full]``, ``progressive`` draws
it in ``[min_len, max_len]`` where ``max_len`` starts at ``len_start`` and grows by ``len_inc``
after every epoch whose ``curriculum/acc_seq`` (exact match at the current lengths) reaches
``threshold``.

Example::

    from abl.trainables.config import build
    task = CopyTask(build(CopyTask.Config, {"variant": "flip"}, section="data"), seed=0)
    x, y = next(task.batches("train", 8))  # (8, 20) and (8, 21)
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from abl.errors import AblError
from abl.trainables.tasks.base import Split, Task, TaskInfo
from abl.trainables.tasks.configs import AdditionConfig, CopyConfig, SymbolicConfig
from abl.trainables.tasks.holdout import HeldOut

_EVAL_CHUNK = 1024  # samples per forward pass when measuring accuracy
_MAX_REDRAWS = 64  # rounds of redrawing training samples that hit the validation set
Piece = tuple[Tensor, Tensor]  # (tokens (B, W) left-aligned, used length (B,))


def n_digits(value: int, base: int) -> int:
    """Digits of ``value >= 0`` in ``base`` (0 has one digit)."""
    count = 1
    while value >= base:
        value //= base
        count += 1
    return count


def _seeded(*keys: int) -> torch.Generator:
    """A torch generator seeded from independent integer keys (seed, stream, ...)."""
    entropy = [k % 2**64 for k in keys]  # SeedSequence takes non-negative integers
    seed = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(seed)


def pack(pieces: Sequence[Piece], width: int, pad: int) -> Tensor:
    """Concatenate variable-length pieces row by row, left-aligned, padded to ``width``."""
    batch = pieces[0][0].shape[0]
    out = torch.full((batch, width), pad, dtype=torch.long)
    offset = torch.zeros(batch, dtype=torch.long)
    for tokens, used in pieces:
        cols = torch.arange(tokens.shape[1])
        valid = cols < used[:, None]
        rows = torch.arange(batch)[:, None].expand_as(tokens)
        out[rows[valid], (offset[:, None] + cols)[valid]] = tokens[valid]
        offset = offset + used
    return out


class SymbolicTask(Task):
    """Base of the digit tasks: tokens, padding, length curriculum, loss and accuracies.

    Subclasses give :meth:`_shape` (full length, ``T_in``, ``T_out``) and :meth:`_make`, which
    draws the samples of given lengths.
    """

    metrics = SymbolicConfig.task_metrics

    def __init__(self, cfg: Any, *, seed: int) -> None:
        super().__init__(cfg, seed=seed)
        self.pad_id, self.eos_id, self.sep_id = cfg.base, cfg.base + 1, cfg.base + 2
        self.full_len, self.t_in, self.t_out = self._shape()
        _check(cfg, self.full_len)
        self.max_len = cfg.len_start if cfg.curriculum == "progressive" else self.full_len
        self.info = TaskInfo(vocab_size=cfg.base + 3, block_size=self.t_in, output_len=self.t_out)
        full = torch.full((cfg.val_samples,), self.full_len, dtype=torch.long)
        self._val = self._make(full, _seeded(cfg.seed, 1))
        self._held_out_inputs = HeldOut(self._val[0], self.info.vocab_size)
        self._levels: dict[int, tuple[Tensor, Tensor]] = {}

    @abstractmethod
    def _shape(self) -> tuple[int, int, int]:
        """``(full length, T_in, T_out)``."""

    @abstractmethod
    def _make(self, lengths: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Inputs and targets of ``len(lengths)`` samples, sample ``i`` of length ``lengths[i]``."""

    def _lengths(self, n: int, gen: torch.Generator) -> Tensor:
        """Lengths of ``n`` training samples under the curriculum."""
        if self.cfg.curriculum == "none":
            return torch.full((n,), self.full_len, dtype=torch.long)
        return torch.randint(self.cfg.min_len, self.max_len + 1, (n,), generator=gen)

    def batches(
        self, split: Split, batch_size: int, *, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(inputs, targets)``: fresh samples for train (from ``generator``, else the
        task seed), the fixed full-length set for val."""
        if split == "val":
            x, y = self._val
            for start in range(0, x.shape[0], batch_size):
                yield x[start : start + batch_size], y[start : start + batch_size]
            return
        gen = generator if generator is not None else _seeded(self.seed, 0)
        for start in range(0, self.cfg.train_samples, batch_size):
            n = min(batch_size, self.cfg.train_samples - start)
            yield self._held_out(self._lengths(n, gen), gen)

    def _held_out(self, lengths: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Training samples of ``lengths``; one whose input is a validation input is redrawn."""
        x, y = self._make(lengths, gen)
        for _ in range(_MAX_REDRAWS):
            hit = self._held_out_inputs.hits(x)
            if not hit.any():
                return x, y
            rows = hit.nonzero().squeeze(1)
            x[rows], y[rows] = self._make(lengths[rows], gen)  # same lengths: same curriculum
        raise AblError(
            f"the validation set holds nearly every sample of length {int(lengths[rows[0]])}, "
            f"so training cannot avoid it; lower data.val_samples (got {self.cfg.val_samples}) "
            f"or lengthen the task"
        )

    def num_batches(self, split: Split, batch_size: int) -> int:
        n = self.cfg.val_samples if split == "val" else self.cfg.train_samples
        return -(-n // batch_size)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy of ``(B, T_out, V)`` logits over the non-PAD target tokens."""
        return F.cross_entropy(
            output.reshape(-1, output.shape[-1]), target.reshape(-1), ignore_index=self.pad_id
        )

    def state(self) -> dict[str, Any]:
        """The progressive curriculum's current max length."""
        return {"max_len": self.max_len}

    def load_state(self, state: dict[str, Any]) -> None:
        self.max_len = int(state.get("max_len", self.max_len))

    def observe(self, metrics: dict[str, float]) -> None:
        """Progressive curriculum: raise the max length after an epoch at ``threshold``.

        The max length is part of :meth:`state`, which every checkpoint saves: a trial resumed
        from a checkpoint continues the curriculum where it stopped.
        """
        if self.cfg.curriculum != "progressive":
            return
        if metrics.get("curriculum/acc_seq", 0.0) >= self.cfg.threshold:
            self.max_len = min(self.full_len, self.max_len + self.cfg.len_inc)

    @torch.no_grad()
    def epoch_metrics(self, model: torch.nn.Module) -> dict[str, float]:
        """Token and exact-match accuracy on the full-length val set and at the current lengths."""
        was_training = model.training
        model.eval()
        try:
            acc_token, acc_seq = self.accuracy(model, *self._val)
            _, level_seq = self.accuracy(model, *self._level_set())
        finally:
            model.train(was_training)
        return {
            "val/acc_token": acc_token,
            "val/acc_seq": acc_seq,
            "curriculum/acc_seq": level_seq,
            "curriculum/max_len": float(self.max_len),
        }

    def _level_set(self) -> tuple[Tensor, Tensor]:
        """A fixed set drawn like the training data at the current max length, from data.seed.

        Not held out of training: at short lengths there are too few samples to spare, and it
        only decides when the curriculum moves on.
        """
        if self.cfg.curriculum == "none":
            return self._val
        if self.max_len not in self._levels:
            gen = _seeded(self.cfg.seed, 2, self.max_len)
            self._levels[self.max_len] = self._make(self._lengths(self.cfg.val_samples, gen), gen)
        return self._levels[self.max_len]

    def accuracy(self, model: torch.nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
        """``(token accuracy on non-PAD targets, share of targets matched exactly)``."""
        device = next(iter(model.parameters()), torch.empty(0)).device
        right, tokens, exact = 0, 0, 0
        for start in range(0, x.shape[0], _EVAL_CHUNK):
            xb, yb = x[start : start + _EVAL_CHUNK], y[start : start + _EVAL_CHUNK].to(device)
            pred = model(xb.to(device)).argmax(-1)
            mask = yb != self.pad_id
            hit = (pred == yb) | ~mask
            right += int((hit & mask).sum())
            tokens += int(mask.sum())
            exact += int(hit.all(-1).sum())
        return right / max(tokens, 1), exact / max(x.shape[0], 1)


class CopyTask(SymbolicTask):
    """Copy a digit string; ``flip`` reverses it, ``roll`` rotates it right by ``roll_by``."""

    Config = CopyConfig
    smoke: ClassVar[dict[str, Any]] = {
        "data.seq_len": 6,
        "data.train_samples": 256,
        "data.val_samples": 64,
    }

    def _shape(self) -> tuple[int, int, int]:
        return self.cfg.seq_len, self.cfg.seq_len, self.cfg.seq_len + 1

    def _make(self, lengths: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        digits = torch.randint(0, self.cfg.base, (lengths.shape[0], self.t_in), generator=gen)
        return self.encode(digits, lengths)

    def encode(self, digits: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Input and target of the strings ``digits[i, :lengths[i]]`` (``digits`` is (B, T_in)).

        With ``variant=flip``, base 16, ``seq_len=5``: digits ``[[1, 2, 3, 0, 0]]`` of length 3
        give ``x = [[1, 2, 3, PAD, PAD]]`` and ``y = [[3, 2, 1, EOS, PAD, PAD]]``.
        """
        n, width = digits.shape
        pos, used = torch.arange(width).expand(n, width), lengths[:, None]
        if self.cfg.variant == "flip":
            source = used - 1 - pos
        elif self.cfg.variant == "roll":
            source = (pos - self.cfg.roll_by) % used
        else:
            source = pos
        body = digits.gather(1, source.clamp(0, width - 1))
        eos = (torch.full((n, 1), self.eos_id), torch.ones(n, dtype=torch.long))
        x = pack([(digits, lengths)], self.t_in, self.pad_id)
        return x, pack([(body, lengths), eos], self.t_out, self.pad_id)


class AdditionTask(SymbolicTask):
    """``a SEP b`` -> the digits of ``a + b`` then EOS, most significant digit first.

    A sample of length ``L`` draws both operands uniformly in ``[0, min(max_value, base**L - 1)]``.
    """

    Config = AdditionConfig
    smoke: ClassVar[dict[str, Any]] = {
        "data.max_value": 100,
        "data.train_samples": 256,
        "data.val_samples": 64,
    }

    def _shape(self) -> tuple[int, int, int]:
        digits = n_digits(self.cfg.max_value, self.cfg.base)
        return digits, 2 * digits + 1, n_digits(2 * self.cfg.max_value, self.cfg.base) + 1

    def digits(self, values: Tensor, width: int) -> Piece:
        """Tokens of ``values`` (most significant first, left-aligned) and their digit counts."""
        base = self.cfg.base
        cols = torch.arange(width)
        used = 1 + (values[:, None] >= base ** cols[1:]).sum(1)
        exponent = (used[:, None] - 1 - cols).clamp(min=0)
        tokens = values[:, None] // base**exponent % base
        return tokens.masked_fill(cols >= used[:, None], self.pad_id), used

    def _make(self, lengths: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        cap = (self.cfg.base**lengths - 1).clamp(max=self.cfg.max_value)
        return self.encode(_uniform_upto(cap, gen), _uniform_upto(cap, gen))

    def encode(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """Input ``a SEP b`` and target ``a + b`` EOS of the operand pairs ``(a[i], b[i])``.

        In base 16 with ``max_value=1000``: ``a = [1000], b = [1]`` (0x3e8 + 0x1) give
        ``x = [[3, 14, 8, SEP, 1, PAD, PAD]]`` and ``y = [[3, 14, 9, EOS]]``.
        """
        one = torch.ones(a.shape[0], dtype=torch.long)
        sep = (torch.full((a.shape[0], 1), self.sep_id), one)
        eos = (torch.full((a.shape[0], 1), self.eos_id), one)
        width = self.full_len
        x = pack([self.digits(a, width), sep, self.digits(b, width)], self.t_in, self.pad_id)
        return x, pack([self.digits(a + b, self.t_out - 1), eos], self.t_out, self.pad_id)


def _uniform_upto(cap: Tensor, gen: torch.Generator) -> Tensor:
    """Integers uniform in ``[0, cap[i]]``, one per entry of ``cap``."""
    draw = torch.rand(cap.shape[0], generator=gen, dtype=torch.float64) * (cap + 1)
    return draw.long().clamp(max=cap)


def _check(cfg: SymbolicConfig, full_len: int) -> None:
    if cfg.min_len > full_len:
        raise AblError(f"min_len must be in [1, {full_len}]; got {cfg.min_len} (data.min_len)")
    if cfg.curriculum == "progressive" and not cfg.min_len <= cfg.len_start <= full_len:
        raise AblError(
            f"len_start must be in [min_len, {full_len}]; got {cfg.len_start} (data.len_start)"
        )
