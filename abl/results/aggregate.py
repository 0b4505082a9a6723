"""Repeats: configurations that differ only by seed, as mean, spread and a 95% CI.

Tiny models are noisy, so a ranking of single trials can be luck. :func:`aggregate_repeats`
groups trials by every varying parameter except the seed and ranks the groups by their mean::

    from abl.results import aggregate_repeats, load_run

    run = load_run(run_dir)
    reps = aggregate_repeats(run.trials, run.params, run.metric, run.space.mode)
    print(reps.table.head(), reps.overlap)

Only completed trials with a finite metric are averaged. Pruned trials stopped early, so their
last value is not comparable: they are excluded and counted. Errored, diverged and unfinished
trials are never averaged either; :class:`TrialSplit` keeps every one of them for the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from abl.results.store import TrialStatus

CONFIDENCE = 0.95
_STATS = ["mean", "std", "n", "ci_low", "ci_high"]


@dataclass(frozen=True)
class TrialSplit:
    """A run's trials by what a report may do with them (all four together are every trial)."""

    ok: pd.DataFrame  # completed with a finite metric: ranked and averaged
    pruned: pd.DataFrame  # stopped early by the scheduler: counted, not averaged
    failed: pd.DataFrame  # errored, diverged, running or pending: listed with their error
    no_value: pd.DataFrame  # completed without a finite value of the metric

    def counts(self) -> dict[str, int]:
        """How many trials fell where, e.g. ``{"ok": 10, "pruned": 2, ...}``."""
        return {k: len(getattr(self, k)) for k in ("ok", "pruned", "failed", "no_value")}


def split_trials(trials: pd.DataFrame, metric: str) -> TrialSplit:
    """Sort every trial into exactly one of the :class:`TrialSplit` groups."""
    values = pd.to_numeric(trials[metric], errors="coerce") if metric in trials else None
    finite = (
        np.isfinite(values.to_numpy(float)) if values is not None else np.zeros(len(trials), bool)
    )
    completed = (trials["status"] == TrialStatus.COMPLETED.value).to_numpy()
    pruned = (trials["status"] == TrialStatus.PRUNED.value).to_numpy()
    return TrialSplit(
        ok=trials[completed & finite],
        pruned=trials[pruned],
        failed=trials[~completed & ~pruned],
        no_value=trials[completed & ~finite],
    )


def summarize(
    values: pd.Series, keys: list[pd.Series], confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """Mean, std (ddof 1), n and the two-sided t-interval of ``values`` per group of ``keys``.

    Groups of one have no std and no interval (NaN). Vectorised: one groupby, one t.ppf call.
    """
    from scipy import stats

    grouped = values.groupby(keys, sort=False, dropna=False, observed=True)
    out = grouped.agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    dof = (out["n"] - 1).to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = stats.t.ppf(0.5 + confidence / 2, np.where(dof > 0, dof, np.nan))
        half = t * out["std"].to_numpy(float) / np.sqrt(out["n"].to_numpy(float))
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    return out[_STATS]


@dataclass(frozen=True)
class Repeats:
    """Configurations ranked by their mean over seeds (see :func:`aggregate_repeats`)."""

    table: pd.DataFrame  # one row per configuration: params, mean, std, n, ci_low, ci_high, rank
    params: list[str]  # the configuration keys (the varying parameters minus the seed)
    metric: str
    mode: str
    confidence: float
    split: TrialSplit  # which trials were averaged, and which were not

    @property
    def has_repeats(self) -> bool:
        """True when at least one configuration ran more than once."""
        return bool(len(self.table) and self.table["n"].max() > 1)

    @property
    def overlap(self) -> bool | None:
        """Whether the leader's CI overlaps the runner-up's; None without two intervals."""
        if len(self.table) < 2:
            return None
        first, second = self.table.iloc[0], self.table.iloc[1]
        bounds = [first.ci_low, first.ci_high, second.ci_low, second.ci_high]
        if not np.all(np.isfinite(bounds)):
            return None
        return bool(first.ci_low <= second.ci_high and second.ci_low <= first.ci_high)


def aggregate_repeats(
    trials: pd.DataFrame,
    params: Sequence[str],
    metric: str,
    mode: str,
    *,
    confidence: float = CONFIDENCE,
) -> Repeats:
    """Group trials by ``params`` (the seed must not be among them) and rank groups by mean.

    >>> import pandas as pd
    >>> trials = pd.DataFrame({"trial_id": list("abcd"), "status": ["completed"] * 4,
    ...     "pe": ["rope", "rope", "sinpe", "sinpe"], "seed": [0, 1, 0, 1],
    ...     "val/loss": [1.0, 1.2, 2.0, 2.2]})
    >>> aggregate_repeats(trials, ["pe"], "val/loss", "min").table[["pe", "mean", "n"]]
          pe  mean  n
    0   rope   1.1  2
    1  sinpe   2.1  2
    """
    params = [p for p in params if p != "seed"]
    split = split_trials(trials, metric)
    ok = split.ok
    keys = [ok[p] for p in params] or [pd.Series(0, index=ok.index, name="_all")]
    table = summarize(ok[metric].astype(float), keys, confidence).reset_index()
    table = table.drop(columns=["_all"], errors="ignore")
    table = table.sort_values("mean", ascending=mode == "min", kind="stable", ignore_index=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return Repeats(table, list(params), metric, mode, confidence, split)


def top_trials(
    trials: pd.DataFrame, metric: str, mode: str, k: int = 10, *, by: str | None = None
) -> pd.DataFrame:
    """The best ``k`` completed trials by ``metric`` (per value of ``by`` if given), with a
    ``rank`` column; ties keep the trials' order.

    >>> top_trials(run.trials, "val/loss", "min", k=5)  # doctest: +SKIP
    """
    ok = split_trials(trials, metric).ok
    ranked = ok.sort_values(metric, ascending=mode == "min", kind="stable")
    if by is None:
        top = ranked.head(k).copy()
        top["rank"] = np.arange(1, len(top) + 1)
        return top
    top = ranked.groupby(by, sort=False, dropna=False).head(k).copy()
    top["rank"] = top.groupby(by, sort=False, dropna=False).cumcount() + 1
    return top.sort_values([by, "rank"], kind="stable", na_position="last")
