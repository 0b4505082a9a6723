"""Marginal effects: how each value of a parameter moves the metric, averaged over the rest.

For every parameter, the mean and 95% CI of the metric at each value (continuous parameters in
quantile bins), the best value, and its effect size against the next best: the difference of
the two means in units of their pooled standard deviation (Cohen's d)::

    from abl.results import load_run, marginal_effects

    run = load_run(run_dir)
    for e in marginal_effects(run.trials, run.params, run.metric, run.space.mode):
        print(e.param, e.best, e.runner_up, e.d)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from abl.results._design import is_continuous, levels, varying
from abl.results.aggregate import CONFIDENCE, split_trials, summarize


@dataclass(frozen=True)
class Effect:
    """The marginal effect of one parameter."""

    param: str
    table: pd.DataFrame  # value, mean, std, n, ci_low, ci_high: one row per value, natural order
    best: Any  # the value with the best mean
    runner_up: Any  # the next best value (None with a single value)
    d: float  # Cohen's d of best vs runner-up (NaN when either has fewer than two trials)
    binned: bool  # a continuous parameter: values are quantile bins
    points: pd.DataFrame | None = None  # value, y: every trial behind the table (for plots)

    @property
    def spread(self) -> float:
        """Best minus worst mean, in absolute value: how far this parameter moves the metric."""
        return float(self.table["mean"].max() - self.table["mean"].min())


def marginal_effects(
    trials: pd.DataFrame,
    params: Sequence[str],
    metric: str,
    mode: str,
    *,
    confidence: float = CONFIDENCE,
) -> list[Effect]:
    """One :class:`Effect` per varying parameter, over completed trials with a finite metric.

    >>> import pandas as pd
    >>> trials = pd.DataFrame({"status": ["completed"] * 4, "pe": ["rope", "rope", "sinpe", "sinpe"],
    ...     "val/loss": [1.0, 1.2, 2.0, 2.2]})
    >>> e = marginal_effects(trials, ["pe"], "val/loss", "min")[0]
    >>> e.best, e.runner_up, round(e.d, 2)
    ('rope', 'sinpe', 7.07)
    """
    ok = split_trials(trials, metric).ok
    y = ok[metric].astype(float)
    out = []
    for p in varying(ok, [p for p in params if p != "seed"]):
        table = summarize(y, [levels(ok[p]).rename("value")], confidence).reset_index()
        table = table.sort_values("value", ignore_index=True)  # natural order of the levels
        table["value"] = table["value"].astype(object)
        ranked = table.sort_values("mean", ascending=mode == "min", kind="stable")
        best = ranked.iloc[0]
        second = ranked.iloc[1] if len(ranked) > 1 else None
        out.append(
            Effect(
                param=p,
                table=table,
                best=best["value"],
                runner_up=None if second is None else second["value"],
                d=math.nan if second is None else cohens_d(best, second),
                binned=is_continuous(ok[p]),
                points=pd.DataFrame({"value": levels(ok[p]).astype(object), "y": y}),
            )
        )
    return out


def cohens_d(a: pd.Series, b: pd.Series) -> float:
    """|mean a - mean b| / pooled std of two groups given as rows with mean, std and n."""
    dof = a["n"] + b["n"] - 2
    if a["n"] < 2 or b["n"] < 2 or dof <= 0:
        return math.nan
    pooled = math.sqrt(((a["n"] - 1) * a["std"] ** 2 + (b["n"] - 1) * b["std"] ** 2) / dof)
    diff = abs(float(a["mean"] - b["mean"]))
    if pooled == 0:
        return math.inf if diff > 0 else 0.0
    return diff / pooled
