"""The ``fanova`` and ``ped_anova`` importance methods: Optuna's evaluators on a sweep's trials.

The trials become an in-memory study (``optuna.create_study`` + ``add_trials`` of
``optuna.trial.create_trial(params, distributions, value)``); grid and categorical parameters
are ``CategoricalDistribution``s (a conditional parameter's missing value is the choice None),
continuous ones ``FloatDistribution``s, log-scaled over two decades or more.

Costs, measured on 2 cores: Optuna's fANOVA grows a forest of 64 full-depth trees, and its
variance decomposition walks every leaf in Python: 250 noisy trials took 7 s, 2000 took 104 s.
So fANOVA sees at most ``FANOVA_CAP`` trials (a seeded random subsample) through trees of
depth ``FANOVA_DEPTH`` (2000 trials: 7 s, same ranking). PED-ANOVA is cheap but building the
study costs ~0.4 ms per trial, so it sees at most ``PED_ANOVA_CAP`` trials.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from abl.results._design import is_continuous, is_log_scaled, natural_key, python_value
from abl.results.importance import ImportanceMethod, ImportanceResult, sort_scores

if TYPE_CHECKING:
    import optuna
    from optuna.importance import BaseImportanceEvaluator

FANOVA_CAP = 2000  # trials given to fANOVA (a seeded random subsample beyond that)
FANOVA_DEPTH = 8  # max depth of its trees: at most 256 leaves each
PED_ANOVA_CAP = 10_000  # trials given to PED-ANOVA
TOP_QUANTILE = 0.1  # PED-ANOVA: what matters to reach the best 10% of trials
SEED = 0


class _OptunaImportance(ImportanceMethod):
    """Shared part: subsample, build the study, run the evaluator, scale its scores."""

    cap: ClassVar[int]

    def compute(
        self, frame: pd.DataFrame, params: Sequence[str], metric: str, mode: str
    ) -> ImportanceResult:
        note = f"on a random {self.cap} of {len(frame)} trials" if len(frame) > self.cap else ""
        if len(frame) > self.cap:
            frame = frame.sample(self.cap, random_state=SEED)
        if frame[metric].nunique() < 2:
            zeros = dict.fromkeys(params, 0.0)
            return ImportanceResult(
                self.name, zeros, n_trials=len(frame), note="metric is constant"
            )
        with _quiet():
            study, names, skipped = build_study(frame, params, metric, mode)
            raw = self.evaluator().evaluate(study, params=names)
        notes = [note, self.caveat(len(frame))]
        notes += (
            [f"not scored (continuous and conditional): {', '.join(skipped)}"] if skipped else []
        )
        return ImportanceResult(
            self.name,
            sort_scores(self.scale(raw)),
            n_trials=len(frame),
            note="; ".join(n for n in notes if n),
        )

    def evaluator(self) -> BaseImportanceEvaluator:
        raise NotImplementedError

    def scale(self, raw: dict[str, float]) -> dict[str, float]:
        return raw

    def caveat(self, n_trials: int) -> str:
        return ""


class FanovaImportance(_OptunaImportance):
    """fANOVA: the share of variance of each parameter's main effect in a random forest."""

    name = "fanova"
    description = "share of variance of the main effect in a random forest (fANOVA)"
    cap = FANOVA_CAP

    def evaluator(self) -> BaseImportanceEvaluator:
        from optuna.importance import FanovaImportanceEvaluator

        return FanovaImportanceEvaluator(seed=SEED, max_depth=FANOVA_DEPTH)


class PedAnovaImportance(_OptunaImportance):
    """PED-ANOVA: how differently each parameter is distributed in the top 10%; sums to 1."""

    name = "ped_anova"
    description = f"what it takes to reach the top {TOP_QUANTILE:.0%} (PED-ANOVA), sums to 1"
    cap = PED_ANOVA_CAP

    def evaluator(self) -> BaseImportanceEvaluator:
        from optuna.importance import PedAnovaImportanceEvaluator

        return PedAnovaImportanceEvaluator(target_quantile=TOP_QUANTILE)

    def scale(self, raw: dict[str, float]) -> dict[str, float]:
        total = sum(raw.values())
        return {p: v / total if total > 0 else 0.0 for p, v in raw.items()}

    def caveat(self, n_trials: int) -> str:
        top = int(n_trials * TOP_QUANTILE + 0.999)
        return f"only {top} trials in the top {TOP_QUANTILE:.0%}: unstable" if top < 5 else ""


def build_study(
    frame: pd.DataFrame, params: Sequence[str], metric: str, mode: str
) -> tuple[optuna.Study, list[str], list[str]]:
    """An in-memory study with one trial per row; returns it, the params in it, those left out."""
    import optuna

    dists: dict[str, Any] = {}
    columns: dict[str, list[Any]] = {}
    skipped = []
    for p in params:
        values = frame[p]
        if is_continuous(values) and values.isna().any():
            skipped.append(p)  # a float distribution has no "missing" value
        elif is_continuous(values):
            low, high = float(values.min()), float(values.max())
            dists[p] = optuna.distributions.FloatDistribution(low, high, log=is_log_scaled(values))
            columns[p] = values.astype(float).tolist()
        else:
            columns[p] = [python_value(v) for v in values.tolist()]
            choices = sorted(set(columns[p]), key=lambda v: (v is None, natural_key(v)))
            dists[p] = optuna.distributions.CategoricalDistribution(choices)
    names = list(dists)
    create = optuna.trial.create_trial
    rows = zip(*(columns[p] for p in names), strict=True) if names else [()] * len(frame)
    values = frame[metric].astype(float).tolist()
    trials = [
        create(params=dict(zip(names, row, strict=True)), distributions=dists, value=value)
        for row, value in zip(rows, values, strict=True)
    ]
    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    study.add_trials(trials)
    return study, names, skipped


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence Optuna's info logs and warnings (study created, too few trials) for a while."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(level)
