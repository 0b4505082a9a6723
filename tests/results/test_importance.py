"""Importance: planted effects come out in the right order, for a grid and a sampled design."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from abl.errors import AblError
from abl.results import (
    IMPORTANCE_METHODS,
    ImportanceMethod,
    choose_methods,
    compute_importance,
    importance_method,
)
from abl.results._anova import exact_anova
from abl.results._design import factor_codes
from tests.results.synthetic import GRID, grid_trials

PARAMS = list(GRID)
PE = {"none": 1.0, "sinpe": 0.6, "rope": 0.0}


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def sampled(n: int = 1500, seed: int = 1) -> pd.DataFrame:
    """A random-search design: pe >> causal, an lr x width interaction, no width main effect."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "trial_id": [f"s{i}" for i in range(n)],
            "status": "completed",
            "model.pe_type": rng.choice(list(PE), n),
            "model.is_causal": rng.choice([True, False], n),
            "train.lr": 10 ** rng.uniform(-4, -2, n),
            "model.width": rng.choice([64, 128], n),
        }
    )
    high_lr = df["train.lr"] > 1e-3
    wide = df["model.width"] == 128
    df["val/loss"] = (
        2.0
        + df["model.pe_type"].map(PE)
        + 0.3 * df["model.is_causal"]
        + np.where(high_lr == wide, 0.2, -0.2)
        + rng.normal(0, 0.05, n)
    )
    return df


def test_anova_finds_planted_grid_effects_and_interaction() -> None:
    imp = compute_importance(frame(grid_trials()), PARAMS, "val/loss", "min")
    anova = imp.groups["all"][0]
    assert anova.method == "anova" and anova.note.startswith("exact")
    assert anova.ranking()[:2] == ["model.pe_type", "model.is_causal"]
    assert anova.scores["model.pe_type"] > 0.5
    assert anova.top_interaction() == ("train.lr", "model.n_embd")
    assert anova.interactions[("train.lr", "model.n_embd")] > 0.2
    tests = {t.term: t for t in anova.ftests}
    assert tests["model.pe_type"].p < 1e-6
    assert tests["train.lr × model.n_embd"].p < 1e-6
    assert tests["model.n_embd"].p > 0.01  # no planted main effect


def test_exact_anova_shares_sum_to_one_on_two_factors() -> None:
    rng = np.random.default_rng(0)
    cells = pd.DataFrame(list(itertools.product(range(3), range(4))), columns=["a", "b"])
    y = rng.normal(size=len(cells))
    main, pairs, n_cells = exact_anova(factor_codes(cells, ["a", "b"]), y)
    assert n_cells == 12
    assert sum(main.values()) + sum(pairs.values()) == pytest.approx(1.0)


def test_sampled_design_fanova_and_ped_anova_rank_planted_effects() -> None:
    df = sampled()
    params = ["model.pe_type", "model.is_causal", "train.lr", "model.width"]
    assert choose_methods(df, params) == ["fanova", "ped_anova", "anova"]
    imp = compute_importance(df, params, "val/loss", "min")
    results = {r.method: r for r in imp.groups["all"]}
    assert results["fanova"].ranking()[:2] == ["model.pe_type", "model.is_causal"]
    assert results["ped_anova"].ranking()[0] == "model.pe_type"
    assert results["anova"].top_interaction() == ("train.lr", "model.width")
    assert results["anova"].note.startswith("not a full grid")


def test_exact_anova_and_fanova_agree_on_a_clean_grid() -> None:
    levels = {"a": [0, 1, 2, 3], "b": [0, 1], "c": [0, 1, 2], "d": [0, 1]}
    rng = np.random.default_rng(2)
    rows = [
        dict(zip(levels, cell, strict=True)) for cell in itertools.product(*levels.values())
    ] * 2
    df = pd.DataFrame(rows).assign(status="completed")
    df["val/loss"] = 1.0 * df["a"] + 0.6 * df["b"] + 0.15 * df["c"] + rng.normal(0, 0.01, len(df))
    imp = compute_importance(df, list(levels), "val/loss", "min", methods=["anova", "fanova"])
    anova, fanova = imp.groups["all"]
    assert anova.ranking()[:3] == fanova.ranking()[:3] == ["a", "b", "c"]
    assert imp.disagreements() == {}


@pytest.mark.parametrize("name", sorted(IMPORTANCE_METHODS))
def test_every_registered_method(name: str) -> None:
    method = importance_method(name)
    assert isinstance(method, ImportanceMethod) and method.name == name and method.description
    df = frame(grid_trials(repeats=2))
    result = method.compute(df, PARAMS, "val/loss", "min")
    assert result.method == name and set(result.scores) == set(PARAMS)
    assert all(np.isfinite(v) and v >= 0 for v in result.scores.values())
    assert result.ranking()[0] == "model.pe_type"
    json.dumps(result.to_json(), allow_nan=False)


def test_unknown_method_lists_the_registered_ones() -> None:
    with pytest.raises(AblError, match=r"one of anova, fanova, ped_anova.*did you mean 'fanova'"):
        importance_method("fanva")


def test_by_computes_importance_within_each_group() -> None:
    imp = compute_importance(frame(grid_trials()), PARAMS, "val/loss", "min", by="model.is_causal")
    assert set(imp.groups) == {"model.is_causal=true", "model.is_causal=false"}
    for results in imp.groups.values():
        assert "model.is_causal" not in results[0].scores
        assert results[0].ranking()[0] == "model.pe_type"


def test_too_few_trials_or_nothing_varying_is_skipped_with_a_reason() -> None:
    df = frame(grid_trials(repeats=1))[:2]
    imp = compute_importance(df, PARAMS, "val/loss", "min")
    assert imp.groups == {} and imp.skipped["all"] == "only 2 usable trials"
    constant = frame(grid_trials(repeats=1)).assign(**{"model.pe_type": "rope"})
    imp = compute_importance(constant, ["model.pe_type"], "val/loss", "min")
    assert imp.skipped == {"all": "no parameter varies"}


def test_anova_on_a_design_with_more_levels_than_trials_does_not_raise() -> None:
    """18 trials, a sampled lr with 18 distinct values (a categorical of 18 levels): the OLS fit
    is saturated; anova says so instead of raising from statsmodels."""
    rng = np.random.default_rng(0)
    rows = grid_trials(repeats=1)[:18]
    df = frame(rows).assign(**{"train.lr": 10 ** rng.uniform(-4, -2, 18)})
    imp = compute_importance(df, PARAMS, "val/loss", "min", methods=["anova"])
    assert "saturated fit: no scores" in imp.groups["all"][0].note
