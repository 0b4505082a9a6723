"""Parameter importance: which of a sweep's choices move the metric, and which pairs interact.

An importance method is a small class (:class:`ImportanceMethod`) registered by name in
``IMPORTANCE_METHODS`` and imported only when used (statsmodels and Optuna are heavy):

- ``anova``: functional ANOVA. Exact from cell means on a full-factorial grid (variance share
  of every main effect and pairwise interaction, F-tests when configurations repeat); on other
  designs type-II sums of squares of an OLS fit on binned parameters.
- ``fanova``: Optuna's fANOVA (a random forest's variance decomposition), for sampled spaces.
- ``ped_anova``: Optuna's PED-ANOVA: what matters to reach the top 10% of trials.
- ``marginal``: the reference method, the variance share of each parameter alone (eta squared).

``anova`` (on a full grid) and ``marginal`` also give each score a 95% interval from
resampling the seeds within every cell (``ImportanceResult.intervals``, abl.results._bootstrap).

:func:`compute_importance` picks methods for the design (:func:`choose_methods`)::

    from abl.results import compute_importance, load_run

    run = load_run(run_dir)
    imp = compute_importance(run.trials, run.params, run.metric, run.space.mode)
    print(imp.groups["all"][0].scores)
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from abl.errors import AblError, did_you_mean, one_of
from abl.results._design import factor_codes, is_full_grid, label, levels, python_value, varying
from abl.results.aggregate import split_trials

IMPORTANCE_METHODS: dict[str, str] = {  # name -> "module:class", imported on first use
    "anova": "abl.results._anova:AnovaImportance",
    "fanova": "abl.results._optuna:FanovaImportance",
    "ped_anova": "abl.results._optuna:PedAnovaImportance",
    "marginal": "abl.results.importance:MarginalImportance",
}
MIN_TRIALS = 3  # fewer usable trials than this: nothing to decompose
ALL = "all"  # the group key when importance is not split --by a parameter


@dataclass(frozen=True)
class FTest:
    """The F-test of one ANOVA term (a parameter, or ``a × b``)."""

    term: str
    f: float
    p: float
    df: float
    df_resid: float


@dataclass
class ImportanceResult:
    """What one method says: a score per parameter, larger is more important."""

    method: str
    scores: dict[str, float]  # parameter -> score, largest first (see the method's docs)
    interactions: dict[tuple[str, str], float] = field(default_factory=dict)  # pair -> share
    ftests: list[FTest] = field(default_factory=list)
    # parameter -> (low, high) of its score from resampling seeds within cells (see
    # abl.results._bootstrap); empty where the method has none
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_trials: int = 0  # trials the method used (after any subsampling)
    note: str = ""  # how it was computed: exact, subsampled, skipped params...

    def ranking(self) -> list[str]:
        """Parameters, most important first."""
        return sorted(self.scores, key=lambda p: -self.scores[p])

    def top_interaction(self) -> tuple[str, str] | None:
        """The pair with the largest interaction share, if the method measures interactions."""
        return max(self.interactions, key=self.interactions.__getitem__, default=None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes null)."""
        return {
            "method": self.method,
            "n_trials": self.n_trials,
            "note": self.note,
            "scores": {p: _num(v) for p, v in self.scores.items()},
            "intervals": {p: [_num(lo), _num(hi)] for p, (lo, hi) in self.intervals.items()},
            "interactions": [
                {"params": list(pair), "share": _num(v)}
                for pair, v in sorted(self.interactions.items(), key=lambda kv: -kv[1])
            ],
            "ftests": [
                {"term": t.term, "F": _num(t.f), "p": _num(t.p), "df": t.df, "df_resid": t.df_resid}
                for t in self.ftests
            ],
        }


def _num(value: float) -> float | None:
    value = python_value(value)
    return None if value is None else float(value)


def sort_scores(scores: dict[str, float]) -> dict[str, float]:
    """Scores as plain floats, largest first."""
    return dict(sorted(((p, float(v)) for p, v in scores.items()), key=lambda kv: -kv[1]))


class ImportanceMethod:
    """Base class of importance methods: subclasses set ``name`` and implement ``compute``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # what the score means, for the report's table header

    def compute(
        self, frame: pd.DataFrame, params: Sequence[str], metric: str, mode: str
    ) -> ImportanceResult:
        """Score ``params`` on ``frame`` (usable trials: a finite ``metric`` in every row)."""
        raise NotImplementedError


class MarginalImportance(ImportanceMethod):
    """Eta squared: the share of the metric's variance explained by each parameter alone.

    The reference implementation: one groupby per parameter, no interactions, any design.
    """

    name = "marginal"
    description = "share of variance explained by the parameter alone (eta squared)"

    def compute(
        self, frame: pd.DataFrame, params: Sequence[str], metric: str, mode: str
    ) -> ImportanceResult:
        from abl.results._bootstrap import eta_intervals

        y = frame[metric].astype(float)
        total = float(((y - y.mean()) ** 2).sum())
        scores = {}
        for p in params:
            means = y.groupby(levels(frame[p]), observed=True).transform("mean")
            scores[p] = float(((means - y.mean()) ** 2).sum()) / total if total > 0 else 0.0
        intervals, note = eta_intervals(
            frame, list(params), y.to_numpy(), factor_codes(frame, params)
        )
        return ImportanceResult(
            self.name, sort_scores(scores), intervals=intervals, n_trials=len(frame), note=note
        )


def importance_method(name: str) -> ImportanceMethod:
    """The registered method ``name``, imported now; AblError with the valid names otherwise."""
    if name not in IMPORTANCE_METHODS:
        names = list(IMPORTANCE_METHODS)
        raise AblError(
            f"importance method must be one of {one_of(names)}; got '{name}'{did_you_mean(name, names)}"
        )
    module, cls = IMPORTANCE_METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def choose_methods(frame: pd.DataFrame, params: Sequence[str]) -> list[str]:
    """Full-factorial grid: anova, then fanova as a cross-check. Otherwise fanova and
    ped_anova, then anova on binned parameters for the interactions."""
    if is_full_grid(frame, params):
        return ["anova", "fanova"]
    return ["fanova", "ped_anova", "anova"]


@dataclass
class Importance:
    """Importance of every group (``"all"``, or one per value of the ``by`` parameter)."""

    metric: str
    mode: str
    by: str | None
    groups: dict[str, list[ImportanceResult]]
    skipped: dict[str, str] = field(default_factory=dict)  # group -> why nothing was computed

    def disagreements(self) -> dict[str, dict[str, str]]:
        """Groups where methods rank a different parameter first: group -> {method: top}."""
        out = {}
        for group, results in self.groups.items():
            tops = {r.method: r.ranking()[0] for r in results if r.scores}
            if len(set(tops.values())) > 1:
                out[group] = tops
        return out

    def to_json(self) -> dict[str, Any]:
        """importance.json: methods, scores, interactions and F-tests per group."""
        return {
            "metric": self.metric,
            "mode": self.mode,
            "by": self.by,
            "groups": {g: [r.to_json() for r in rs] for g, rs in self.groups.items()},
            "skipped": self.skipped,
            "disagreements": self.disagreements(),
        }


def compute_importance(
    trials: pd.DataFrame,
    params: Sequence[str],
    metric: str,
    mode: str,
    *,
    methods: Sequence[str] | None = None,
    by: str | None = None,
) -> Importance:
    """Importance of ``params`` for ``metric`` over completed trials, per ``by`` group if given.

    >>> imp = compute_importance(trials, ["model.pe_type", "train.lr"], "val/loss", "min")  # doctest: +SKIP
    >>> imp.groups["all"][0].ranking()  # doctest: +SKIP
    ['model.pe_type', 'train.lr']
    """
    ok = split_trials(trials, metric).ok
    out = Importance(metric, mode, by, groups={})
    for group, frame in _groups(ok, by):
        names = varying(frame, [p for p in params if p not in ("seed", by)])
        if len(frame) < MIN_TRIALS:
            out.skipped[group] = f"only {len(frame)} usable trial{'s' if len(frame) != 1 else ''}"
            continue
        if not names:
            out.skipped[group] = "no parameter varies"
            continue
        chosen = list(methods) if methods else choose_methods(frame, names)
        out.groups[group] = [
            importance_method(m).compute(frame, names, metric, mode) for m in chosen
        ]
    return out


def _groups(frame: pd.DataFrame, by: str | None) -> list[tuple[str, pd.DataFrame]]:
    if by is None:
        return [(ALL, frame)]
    keys = levels(frame[by])
    return [(f"{by}={label(v)}", part) for v, part in frame.groupby(keys, observed=True)]
