"""Repeats: means, t-intervals checked by hand, the overlap flag, and what is left out."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from abl.results import aggregate_repeats, marginal_effects, split_trials, top_trials
from tests.results.synthetic import trial

LOSSES = {"rope": [1.0, 1.1, 1.3], "sinpe": [1.5, 1.6, 1.4, 1.9], "none": [3.0]}


def trials(losses: dict[str, list[float]] = LOSSES) -> pd.DataFrame:
    rows: list[dict] = []
    for pe, values in losses.items():
        for seed, loss in enumerate(values):
            rows.append(trial(len(rows), {"model.pe_type": pe}, loss, seed=seed))
    return pd.DataFrame(rows)


def by_hand(values: list[float]) -> tuple[float, float, float]:
    x = np.array(values)
    mean, sd, n = x.mean(), x.std(ddof=1), len(x)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def test_cis_match_a_hand_computation() -> None:
    reps = aggregate_repeats(trials(), ["model.pe_type", "seed"], "val/loss", "min")
    table = reps.table.set_index("model.pe_type")
    assert list(reps.table["model.pe_type"]) == ["rope", "sinpe", "none"]
    assert list(reps.table["rank"]) == [1, 2, 3]
    for pe in ("rope", "sinpe"):
        mean, low, high = by_hand(LOSSES[pe])
        row = table.loc[pe]
        assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((mean, low, high))
        assert row["n"] == len(LOSSES[pe])
    assert math.isnan(table.loc["none", "ci_low"])  # one seed: no interval
    assert reps.has_repeats


def test_overlap_flag() -> None:
    assert aggregate_repeats(trials(), ["model.pe_type"], "val/loss", "min").overlap is True
    apart = {"rope": [1.0, 1.01, 1.02], "sinpe": [2.0, 2.01, 2.02]}
    assert aggregate_repeats(trials(apart), ["model.pe_type"], "val/loss", "min").overlap is False
    single = {"rope": [1.0], "sinpe": [2.0]}
    reps = aggregate_repeats(trials(single), ["model.pe_type"], "val/loss", "min")
    assert reps.overlap is None and not reps.has_repeats


def test_mode_max_ranks_the_largest_mean_first() -> None:
    reps = aggregate_repeats(trials(), ["model.pe_type"], "val/loss", "max")
    assert reps.table["model.pe_type"].iloc[0] == "none"


def test_pruned_are_excluded_and_failures_kept() -> None:
    df = trials()
    df.loc[0, "status"] = "pruned"
    df.loc[1, ["status", "val/loss"]] = ["errored", None]
    df.loc[2, ["status", "val/loss"]] = ["diverged", float("nan")]
    df.loc[3, "status"] = "running"
    df.loc[4, "val/loss"] = float("inf")  # completed, but not a finite value
    split = split_trials(df, "val/loss")
    assert split.counts() == {"ok": 3, "pruned": 1, "failed": 3, "no_value": 1}
    assert sum(split.counts().values()) == len(df)
    reps = aggregate_repeats(df, ["model.pe_type"], "val/loss", "min")
    assert reps.table["n"].sum() == 3
    assert list(reps.split.failed["status"]) == ["errored", "diverged", "running"]


def test_top_trials_overall_and_per_group() -> None:
    df = trials()
    top = top_trials(df, "val/loss", "min", k=2)
    assert list(top["val/loss"]) == [1.0, 1.1] and list(top["rank"]) == [1, 2]
    per = top_trials(df, "val/loss", "min", k=1, by="model.pe_type")
    assert dict(zip(per["model.pe_type"], per["val/loss"], strict=True)) == {
        "none": 3.0,
        "rope": 1.0,
        "sinpe": 1.4,
    }


def test_marginal_effect_best_value_and_cohens_d() -> None:
    (effect,) = marginal_effects(trials(), ["model.pe_type", "seed"], "val/loss", "min")
    assert effect.best == "rope" and effect.runner_up == "sinpe"
    a, b = np.array(LOSSES["rope"]), np.array(LOSSES["sinpe"])
    pooled = math.sqrt(
        ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    )
    assert effect.d == pytest.approx((b.mean() - a.mean()) / pooled)
    assert list(effect.table["value"]) == ["none", "rope", "sinpe"]  # natural order


def test_continuous_parameter_is_binned() -> None:
    rng = np.random.default_rng(0)
    lr = 10 ** rng.uniform(-4, -2, 200)
    df = pd.DataFrame({"status": "completed", "train.lr": lr, "val/loss": np.log10(lr) ** 2})
    (effect,) = marginal_effects(df, ["train.lr"], "val/loss", "min")
    assert effect.binned and len(effect.table) == 5
    assert effect.best == effect.table["value"].iloc[-1]  # the highest lr bin
