"""Two runs side by side: what changed in the space, their best configurations and metrics.

    abl compare abl-runs/quickstart/2025-04-21_17-39-20 abl-runs/quickstart/2025-04-22_09-00-00

The runs may come from the same space (a rerun, more seeds) or not (a new axis, another
trainable); the space diff says which, key by key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from abl.results.aggregate import split_trials, top_trials
from abl.results.run import RunData, load_run
from abl.space.schema import Space

MISSING = "(absent)"  # a space key one of the two runs does not set


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare_runs`; ``a`` and ``b`` keep the order given."""

    a: RunData
    b: RunData
    metric: str  # the ranking metric (A's space's unless given)
    mode: str
    space_diff: list[tuple[str, Any, Any]]  # (key, value in A, value in B), keys that differ
    status: pd.DataFrame  # trials per status: index status, columns "A" and "B"
    best: pd.DataFrame  # per metric: mode, best in A, best in B, change (B - A)
    top_a: pd.DataFrame  # the best k completed trials of A
    top_b: pd.DataFrame

    @property
    def same_space(self) -> bool:
        """True when the two resolved spaces are identical (apart from where they came from)."""
        return not self.space_diff


def compare_runs(a: Path, b: Path, *, metric: str | None = None, k: int = 5) -> Comparison:
    """Compare run directories ``a`` and ``b``: space diff, statuses, best metrics, top ``k``.

    >>> from abl.results import compare_runs
    >>> c = compare_runs(Path("abl-runs/q/2025-04-21_17-39-20"), Path("abl-runs/q/2025-04-22_09-00-00"))  # doctest: +SKIP
    >>> c.same_space, c.best  # doctest: +SKIP
    """
    run_a, run_b = load_run(Path(a)), load_run(Path(b))
    metric = run_a.check_metric(metric)
    mode = run_a.mode_of(metric)
    return Comparison(
        a=run_a,
        b=run_b,
        metric=metric,
        mode=mode,
        space_diff=space_diff(run_a.space, run_b.space),
        status=_status(run_a, run_b),
        best=_best_metrics(run_a, run_b),
        top_a=top_trials(run_a.trials, metric, mode, k),
        top_b=top_trials(run_b.trials, metric, mode, k)
        if metric in run_b.trials
        else run_b.trials.head(0),
    )


def flat_space(space: Space) -> dict[str, Any]:
    """A space as flat ``section.key`` -> value (lists whole), defaults included."""
    data = space.model_dump(mode="json", by_alias=True, exclude={"source"})
    data["sample"] = {k: d.to_yaml() for k, d in space.sample.items()}
    out: dict[str, Any] = {}
    _flatten(data, "", out)
    return out


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):  # an empty section adds no key
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def space_diff(a: Space, b: Space) -> list[tuple[str, Any, Any]]:
    """Keys whose values differ between two spaces, in A's key order then B's new keys."""
    fa, fb = flat_space(a), flat_space(b)
    keys = list(dict.fromkeys([*fa, *fb]))
    return [
        (key, fa.get(key, MISSING), fb.get(key, MISSING))
        for key in keys
        if fa.get(key, MISSING) != fb.get(key, MISSING)
    ]


def _status(a: RunData, b: RunData) -> pd.DataFrame:
    counts = pd.DataFrame(
        {"A": a.trials["status"].value_counts(), "B": b.trials["status"].value_counts()}
    )
    return counts.fillna(0).astype(int)


def _best_metrics(a: RunData, b: RunData) -> pd.DataFrame:
    """Best of every score in either run; measurements (``perf/*``, ``model/params``: declared
    without a direction in abl.trainables.metrics) have no best and are left out."""
    rows = []
    for metric in dict.fromkeys([*a.metrics, *b.metrics]):
        mode = a.best_mode(metric) if metric in a.metrics else b.best_mode(metric)
        if mode is None:  # a measurement, or a metric without a declared direction
            continue
        best_a, best_b = _best(a, metric, mode), _best(b, metric, mode)
        rows.append(
            {"metric": metric, "mode": mode, "A": best_a, "B": best_b, "change": best_b - best_a}
        )
    return pd.DataFrame(rows, columns=["metric", "mode", "A", "B", "change"])


def _best(run: RunData, metric: str, mode: str) -> float:
    if metric not in run.trials:
        return float("nan")
    values = split_trials(run.trials, metric).ok[metric].astype(float)
    if values.empty:
        return float("nan")
    return float(values.min() if mode == "min" else values.max())
