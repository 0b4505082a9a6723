"""Validation samples of the symbolic tasks never appear in training draws (counted exactly)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from abl.errors import AblError
from abl.trainables.config import build
from abl.trainables.tasks import TASKS
from abl.trainables.tasks.holdout import row_keys
from abl.trainables.tasks.symbolic import SymbolicTask


def make(name: str, **values: Any) -> SymbolicTask:
    cls = TASKS.get(name)
    return cls(build(cls.Config, values, section="data"), seed=0)


def rows(x: torch.Tensor) -> set[tuple[int, ...]]:
    return set(map(tuple, x.tolist()))


def overlap(task: SymbolicTask, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Training samples (counted with repeats) whose input is a validation input."""
    val = rows(task.batches("val", 10**6).__next__()[0])
    return sum(tuple(r) in val for x, _ in batches for r in x.tolist())


CASES = [
    # addition with few operand pairs: 101**2 = 10201, a tenth of them in validation
    ("addition", {"max_value": 100, "curriculum": "none", "val_samples": 1024}),
    # the logbook's addition (1001**2 pairs), lengths under the curriculum
    ("addition", {"max_value": 1000, "curriculum": "uniform"}),
    # copy with a tiny alphabet: 2**6 = 64 strings, 16 of them drawn for validation
    ("copy", {"base": 2, "seq_len": 6, "curriculum": "none", "val_samples": 16}),
]


@pytest.mark.parametrize(("name", "values"), CASES, ids=["addition-100", "addition", "copy-2"])
def test_training_draws_never_hit_the_validation_set(name: str, values: dict[str, Any]) -> None:
    task = make(name, train_samples=24_576, **values)
    gen = torch.Generator().manual_seed(1)
    held_out = list(task.batches("train", 4096, generator=gen))
    assert sum(x.shape[0] for x, _ in held_out) == 24_576
    assert overlap(task, held_out) == 0
    # The same draws without the rule would have trained on validation samples.
    raw_gen = torch.Generator().manual_seed(1)
    raw = [task._make(task._lengths(4096, raw_gen), raw_gen) for _ in range(6)]
    assert overlap(task, raw) > 0


def test_redrawn_samples_keep_their_curriculum_length() -> None:
    task = make("copy", base=2, seq_len=6, curriculum="uniform", val_samples=32, min_len=6)
    x, _ = next(task.batches("train", 2048, generator=torch.Generator().manual_seed(0)))
    assert (x != task.pad_id).sum(1).eq(6).all()  # min_len = full length: every string is full


def test_a_validation_set_that_covers_every_sample_is_an_error() -> None:
    # max_value 3: 16 operand pairs, all of them among 1024 validation draws
    task = make("addition", max_value=3, curriculum="none", train_samples=8)
    with pytest.raises(AblError, match=r"lower data\.val_samples"):
        next(task.batches("train", 8, generator=torch.Generator().manual_seed(0)))


def test_row_keys_are_equal_for_equal_rows_and_tell_apart_every_short_string() -> None:
    every = torch.cartesian_prod(*[torch.arange(5)] * 4)  # all 625 rows of 4 tokens < 5
    keys = row_keys(every, 5)
    assert torch.unique(keys).numel() == 625
    assert torch.equal(row_keys(every.flip(0), 5), keys.flip(0))
