"""Hydra-style overrides: k=v fixes, k=a,b makes a grid axis, settings take one value."""

from __future__ import annotations

import pytest

from abl.errors import AblError
from abl.space import apply_overrides, parse_override

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


WHEN = {
    "name": "t",
    "trainable": "charlm",
    "fixed": {"train.lr": 0.1},
    "grid": {"model.kind": ["bigram", "bigram_att"]},
    "when": [
        {"if": {"model.kind": "bigram_att"}, "grid": {"model.n_embd": [128, 256]}},
        {"if": {"model.kind": "bigram_mf"}, "fixed": {"model.n_embd": 384}},
    ],
}


def test_an_override_replaces_a_key_inside_when_blocks_where_they_give_it():
    out = apply_overrides(WHEN, ["model.n_embd=64"])
    assert out["when"][0]["fixed"] == {"model.n_embd": 64} and out["when"][0]["grid"] == {}
    assert out["when"][1]["fixed"] == {"model.n_embd": 64}
    assert "model.n_embd" not in out["fixed"]  # it applies to the same trials as before
    swept = apply_overrides(WHEN, ["model.n_embd=32,64"])
    assert swept["when"][0]["grid"] == {"model.n_embd": [32, 64]}


def test_an_override_of_a_top_level_key_removes_it_from_when_blocks():
    raw = {**WHEN, "fixed": {"model.n_embd": 32}}
    out = apply_overrides(raw, ["model.n_embd=64"])
    assert out["fixed"]["model.n_embd"] == 64
    assert all(
        "model.n_embd" not in {**b.get("fixed", {}), **b.get("grid", {})} for b in out["when"]
    )


def test_hydra_delete_add_and_force_add():
    out = apply_overrides(WHEN, ["~model.n_embd", "~train.lr", "+train.epochs=2", "++seed=3"])
    assert out["fixed"] == {"train.epochs": 2, "seed": 3}
    assert all(
        "model.n_embd" not in {**b.get("fixed", {}), **b.get("grid", {})} for b in out["when"]
    )
    assert apply_overrides({**RAW, "repeats": 3}, ["~repeats"]).get("repeats") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("~train.epochs", "does not set 'train.epochs'"),
        ("+train.lr=1e-3", "already sets 'train.lr'"),
        ("~train.lr=1e-3", "without a value"),
        ("~repeats", "does not set 'repeats'"),
    ],
)
def test_hydra_prefix_errors(text, expected):
    with pytest.raises(AblError, match=expected):
        apply_overrides(RAW, [text])


def test_a_bracketed_value_is_one_list_value():
    assert parse_override("data.dims=[1,2]").values == ([1, 2],)
