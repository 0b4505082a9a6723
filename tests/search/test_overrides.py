"""Hydra-style overrides: k=v fixes, k=a,b makes a grid axis, settings take one value."""

from __future__ import annotations

import pytest

from abl.errors import AblError
from abl.search import apply_overrides, parse_override

RAW = {
    "name": "t",
    "trainable": "forecast",
    "fixed": {"train.lr": 0.1},
    "grid": {"model.pe_type": ["none", "rope"]},
}


@pytest.mark.parametrize(
    ("text", "key", "values"),
    [
        ("train.lr=1e-3", "train.lr", (1e-3,)),
        ("train.lr=1e-3,3e-4", "train.lr", (1e-3, 3e-4)),
        ("model.is_causal=true,false", "model.is_causal", (True, False)),
        ("model.pe_type=none", "model.pe_type", ("none",)),
        ("data.path='a,b.csv'", "data.path", ("a,b.csv",)),
        ("model.n_layer=range(1,4)", "model.n_layer", (1, 2, 3)),
        ("model.pe_type=choice(rope, sinpe)", "model.pe_type", ("rope", "sinpe")),
        ("seed=3", "seed", (3,)),
    ],
)
def test_parse(text, key, values):
    ov = parse_override(text)
    assert (ov.key, ov.values) == (key, values)


def test_fix_moves_a_grid_axis_to_fixed_and_sweep_moves_fixed_to_grid():
    out = apply_overrides(RAW, ["model.pe_type=rope", "train.lr=1e-3,1e-2"])
    assert out["fixed"] == {"model.pe_type": "rope"}
    assert out["grid"] == {"train.lr": [1e-3, 1e-2]}
    assert RAW["grid"] == {"model.pe_type": ["none", "rope"]}  # the input is not modified


def test_settings_are_set_in_place():
    out = apply_overrides(
        RAW, ["repeats=3", "search.algorithm=tpe", "scheduler.asha.grace_period=2"]
    )
    assert out["repeats"] == 3 and out["search"] == {"algorithm": "tpe"}
    assert out["scheduler"] == {"asha": {"grace_period": 2}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.lr", "must be key=value"),
        ("=3", "dotted name"),
        ("train.lr=", "needs a value"),
        ("repeats=1,2", "takes one value"),
        ("model.n_layer=range(5,1)", "is empty"),
        ("model.n_layer=range(a)", "whole numbers"),
    ],
)
def test_bad_overrides(text, expected):
    with pytest.raises(AblError, match=expected):
        apply_overrides(RAW, [text])
