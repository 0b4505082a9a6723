"""Every trial of a sweep is scored on the same validation data: ``data.seed`` draws it,
the trial ``seed`` drives init and batch order only (common random numbers across arms)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from abl.trainables.loop import Run, build_run
from abl.trainables.models import MODELS
from abl.trainables.spec import TRAINABLES
from abl.trainables.tasks import TASKS
from abl.trainables.tasks.configs import DATA_SEED_HELP


def trial(name: str, **config: Any) -> Run:
    spec = TRAINABLES.get(name)
    smoke = {**TASKS.get(spec.task).smoke, **MODELS.get(spec.default_model).smoke}
    return build_run({**smoke, **config}, spec)


def val_tensors(run: Run) -> list[torch.Tensor]:
    return [t for batch in run.task.batches("val", 16) for t in batch]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", TRAINABLES.names())
def test_trial_seed_moves_init_and_batches_but_not_validation(name: str) -> None:
    a, b = trial(name, seed=0), trial(name, seed=1)
    assert same(val_tensors(a), val_tensors(b))
    # every validation-time metric (accuracies, curriculum level sets) scores the same data
    assert a.task.epoch_metrics(a.model) == b.task.epoch_metrics(a.model)
    params_a, params_b = a.model.state_dict(), b.model.state_dict()
    assert any(not torch.equal(params_a[k], params_b[k]) for k in params_a)  # init
    train_a = next(iter(a.task.batches("train", 16, generator=a.gen)))[0]
    train_b = next(iter(b.task.batches("train", 16, generator=b.gen)))[0]
    assert not torch.equal(train_a, train_b)  # batch order


@pytest.mark.parametrize("name", TRAINABLES.names())
def test_data_seed_draws_other_validation_data(name: str) -> None:
    a, b = trial(name, seed=0), trial(name, seed=0, **{"data.seed": 1})
    assert not same(val_tensors(a), val_tensors(b))
    assert same(val_tensors(b), val_tensors(trial(name, seed=7, **{"data.seed": 1})))


@pytest.mark.parametrize("name", TRAINABLES.names())
def test_data_seed_is_documented(name: str) -> None:
    spec = TRAINABLES.get(name)
    assert spec.schema(spec.default_model)["data.seed"].help == DATA_SEED_HELP


@pytest.mark.parametrize("name", ["copy", "addition"])
def test_curriculum_level_sets_follow_the_data_seed_only(name: str) -> None:
    a, b = trial(name, seed=0), trial(name, seed=1)
    c = trial(name, seed=0, **{"data.seed": 1})
    for run in (a, b, c):
        run.task.max_len = run.task.full_len - 1  # a level below the full length
    assert same(list(a.task._level_set()), list(b.task._level_set()))
    assert not same(list(a.task._level_set()), list(c.task._level_set()))


def test_synthetic_series_follows_the_data_seed_only() -> None:
    a, b = trial("forecast", seed=0), trial("forecast", seed=3)
    assert torch.equal(torch.from_numpy(a.task.series), torch.from_numpy(b.task.series))
    other = trial("forecast", seed=0, **{"data.seed": 3}).task.series
    assert not torch.equal(torch.from_numpy(a.task.series), torch.from_numpy(other))
