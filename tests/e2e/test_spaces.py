"""Every built-in space: the logbook's trial count, and one tiny epoch of each model kind it runs."""

from __future__ import annotations

import math

import pytest

from abl.space import count_trials, expand, load_space
from abl.space.load import trainable_of
from abl.space.schema import builtin_spaces_dir
from abl.trainables.loop import train
from abl.trainables.models import MODELS
from abl.trainables.tasks import TASKS

SPACES = sorted(builtin_spaces_dir().glob("*.yaml"))
EXPECTED = {
    "quickstart": 16,
    "att_timeseries": 192,
    "att_mh_timeseries": 192,
    "bigram_pe": (36 + 2) * 2,
    "attn_variants": 48 * 5,
    "attn_positions": 16 * 3,
    "looped_linreg": 24,
    "latent_copy": 20 * 2,
    "latent_addition": 20,
    "qk_norm_tuned": 6 * (6 + 3),
}


def test_every_builtin_space_is_counted_here():
    assert {p.stem for p in SPACES} == set(EXPECTED)


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_dry_run_count_is_the_logbook_grid(path):
    assert count_trials(load_space(str(path))) == EXPECTED[path.stem]


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_one_tiny_epoch_of_each_model_kind_trains(path):
    space = load_space(str(path))
    spec = trainable_of(space)
    first_of_kind: dict[str, dict] = {}
    for config in expand(space, spec):
        first_of_kind.setdefault(config["model.kind"], config)
    for kind, config in first_of_kind.items():
        smoke = {**TASKS.get(spec.task).smoke, **MODELS.get(kind).smoke, "train.epochs": 1}
        reports: list[dict] = []
        train(
            {**config, **smoke}, trainable=spec, report=lambda m, _ckpt, out=reports: out.append(m)
        )
        last = reports[-1]
        assert last["trial/status"] == "completed", (kind, last)
        assert math.isfinite(last[space.metric]), (kind, last)
