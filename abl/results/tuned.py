"""A tuned ablation's verdict: every arm at its own best nuisance setting, compared fairly.

    abl report abl-runs/qk_norm_tuned/2025-04-21_17-39-20

For a run whose space has ``tune:``, :func:`analyse_tuned` reads ``trials.parquet`` (columns
``tune.phase`` and ``tune.arm``) and computes:

- per arm, the confirmed metric: mean and t-interval over the confirmation seeds (the
  isolation plot); without ``confirm:`` the best tuning trial stands in, untested;
- pairwise Welch t-tests with Hedges' g, Holm-corrected over all pairs, and a ranking where
  arms that are not significantly worse than their group's leader share its rank;
- the untuned reading: one shared value of the learning rate (the most common of the arms'
  optima; values within a factor of 2 count as one) and, per arm, its tuning trial nearest to
  it in log space: the ranking a one-learning-rate sweep would have shown;
- each arm's nuisance optimum, and whether it sits within 10% of its range's edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from abl.results._design import label
from abl.results._pairs import hedges_g, holm
from abl.results.aggregate import CONFIDENCE, split_trials
from abl.space.schema import ARM_KEY, PHASE_KEY, Dist, Phase, Space, arm_keys

ALPHA = 0.05  # significance level of the pairwise tests (after Holm's correction)
EDGE = 0.10  # an optimum this close to a bound (share of the range, log for loguniform)
SAME_FACTOR = 2.0  # optima of a log-scaled parameter within this factor count as one value


@dataclass
class Arm:
    """One arm of a tuned ablation: its scientific values, its optimum, its confirmed metric."""

    index: int  # tune.arm
    values: dict[str, Any]  # the scientific parameters that make this arm
    best: dict[str, Any] = field(default_factory=dict)  # the best tuning trial's nuisance values
    best_value: float | None = None  # that trial's metric
    tuned: int = 0  # tuning trials with a value
    confirmed: np.ndarray = field(default_factory=lambda: np.empty(0))  # confirmation values
    edges: list[str] = field(default_factory=list)  # "train.lr = 1e-4 at the low edge ..."
    untuned_value: float | None = None  # the tuning trial nearest to the shared value
    untuned_at: Any = None  # that trial's value of the shared parameter
    rank: int = 0  # 1 = best; arms that are not significantly apart share a rank
    tied: bool = False  # shares its rank with another arm

    @property
    def name(self) -> str:
        """``qk_norm=rms_norm, attn_activ=softmax`` (``arm 0`` for a space without a grid)."""
        names = [f"{k.rsplit('.', 1)[-1]}={label(v)}" for k, v in self.values.items()]
        return ", ".join(names) or f"arm {self.index}"

    @property
    def score(self) -> float:
        """What the arm is ranked by: the confirmed mean, else its best tuning value."""
        if len(self.confirmed):
            return float(np.mean(self.confirmed))
        return math.nan if self.best_value is None else self.best_value

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """The t-interval of the confirmed mean (NaN with fewer than two seeds)."""
        from scipy import stats

        n = len(self.confirmed)
        if n < 2:
            return math.nan, math.nan
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * np.std(self.confirmed, ddof=1)
        return self.score - half / math.sqrt(n), self.score + half / math.sqrt(n)


@dataclass(frozen=True)
class Pair:
    """Welch's t-test of two arms' confirmed values; ``diff`` is ``a - b``."""

    a: Arm
    b: Arm
    diff: float
    hedges_g: float
    p: float
    p_holm: float

    @property
    def significant(self) -> bool:
        """Whether the arms differ at ``ALPHA`` after Holm's correction."""
        return bool(self.p_holm < ALPHA)


@dataclass
class TunedAnalysis:
    """Everything the tuned-ablation section shows (see :func:`analyse_tuned`)."""

    metric: str
    mode: str
    arms: list[Arm]  # by rank, best first
    pairs: list[Pair]
    shared_key: str | None  # the parameter the untuned reading shares (train.lr)
    shared_value: Any  # its shared value
    shared_why: str  # how the shared value was chosen
    untuned: list[Arm]  # by untuned value, best first
    confirmed: bool  # ranked on confirmation seeds (else on single tuning trials)

    @property
    def winners(self) -> list[Arm]:
        """The arms ranked first (several when not significantly apart)."""
        return [a for a in self.arms if a.rank == 1]

    @property
    def changed(self) -> bool | None:
        """Whether one shared value would have crowned an arm that tuning does not; None: no reading."""
        if not self.untuned or not self.winners:
            return None
        return self.untuned[0].index not in {a.index for a in self.winners}

    def conclusion(self) -> str:
        """One sentence: did tuning per arm change which arm wins?"""
        if self.changed is None:
            return "No untuned reading: too few tuning trials with a value."
        at = f"`{self.shared_key}` = {label(self.shared_value)}"
        tuned = " and ".join(f"`{a.name}`" for a in self.winners)
        if self.changed:
            return (
                f"**Tuning changed the conclusion**: at one shared {at} ({self.shared_why}), "
                f"`{self.untuned[0].name}` would rank first; tuned per arm, {tuned} "
                f"{'is' if len(self.winners) == 1 else 'are'} best."
            )
        return (
            f"Tuning did not change the conclusion: {tuned} also "
            f"{'ranks' if len(self.winners) == 1 else 'rank'} first at one shared {at} "
            f"({self.shared_why})."
        )

    def to_json(self) -> dict[str, Any]:
        """The section as plain data (importance.json's ``tuned`` key)."""
        return {
            "ranked_on": "confirmation seeds" if self.confirmed else "best tuning trial",
            "arms": [
                {
                    "index": a.index,
                    "name": a.name,
                    **{k: _plain(v) for k, v in a.values.items()},
                    "rank": a.rank,
                    "tied": a.tied,
                    "mean": _num(a.score),
                    "n": len(a.confirmed),
                    "ci": [_num(x) for x in a.interval()],
                    "best": {k: _plain(v) for k, v in a.best.items()},
                    "edges": a.edges,
                    "untuned": _num(a.untuned_value),
                }
                for a in self.arms
            ],
            "pairs": [
                {
                    "a": p.a.name,
                    "b": p.b.name,
                    "diff": _num(p.diff),
                    "hedges_g": _num(p.hedges_g),
                    "p": _num(p.p),
                    "p_holm": _num(p.p_holm),
                }
                for p in self.pairs
            ],
            "untuned": {
                "param": self.shared_key,
                "value": _plain(self.shared_value),
                "ranking": [a.name for a in self.untuned],
            },
            "conclusion_changed": self.changed,
        }


def analyse_tuned(trials: pd.DataFrame, space: Space, metric: str, mode: str) -> TunedAnalysis:
    """The tuned ablation of a run's trials (space must have ``tune:``); no file is written."""
    if space.tune is None:
        raise ValueError("not a tuned ablation: the space has no tune: block")
    ok = split_trials(trials, metric).ok
    ok = ok[ok[ARM_KEY].notna()] if ARM_KEY in ok else ok.iloc[0:0]
    keys = [k for k in arm_keys(space) if k in trials]
    params = space.tune.params
    arms = [_arm(i, rows, keys, params, metric, mode) for i, rows in _by_arm(ok, trials)]
    for arm in arms:  # an arm without a single value still shows what it was
        if not arm.values and keys:
            first = trials[trials[ARM_KEY] == arm.index].iloc[0]
            arm.values = {k: first[k] for k in keys}
    pairs = _pairs(arms, mode)
    _rank(arms, pairs, mode)
    arms.sort(key=lambda a: (a.rank, _key(a.score, mode)))
    shared_key, shared_value, why = _shared(arms, params)
    untuned: list[Arm] = []
    if shared_key is not None:
        for arm in arms:
            _untuned(arm, ok, shared_key, shared_value, params[shared_key], metric)
        untuned = sorted(
            (a for a in arms if a.untuned_value is not None),
            key=lambda a: _key(a.untuned_value, mode),
        )
    return TunedAnalysis(
        metric=metric,
        mode=mode,
        arms=arms,
        pairs=pairs,
        shared_key=shared_key,
        shared_value=shared_value,
        shared_why=why,
        untuned=untuned,
        confirmed=any(len(a.confirmed) for a in arms),
    )


def _by_arm(ok: pd.DataFrame, trials: pd.DataFrame) -> list[tuple[int, pd.DataFrame]]:
    """Every arm that ran (from all trials), with its ok trials."""
    ids = sorted({int(i) for i in trials.get(ARM_KEY, pd.Series(dtype=float)).dropna()})
    return [(i, ok[ok[ARM_KEY] == i]) for i in ids]


def _arm(
    index: int,
    rows: pd.DataFrame,
    keys: list[str],
    params: dict[str, Dist],
    metric: str,
    mode: str,
) -> Arm:
    arm = Arm(index=index, values={k: rows.iloc[0][k] for k in keys} if len(rows) else {})
    tuning = rows[rows[PHASE_KEY] == Phase.TUNE.value]
    arm.tuned = len(tuning)
    if len(tuning):
        order = tuning[metric].astype(float)
        best = tuning.loc[order.idxmin() if mode == "min" else order.idxmax()]
        arm.best = {k: python(best[k]) for k in params if k in best}
        arm.best_value = float(best[metric])
        arm.edges = edge_notes(arm.best, params)
    confirm = rows[rows[PHASE_KEY] == Phase.CONFIRM.value]
    arm.confirmed = confirm[metric].astype(float).to_numpy()
    return arm


def python(value: Any) -> Any:
    """A numpy scalar as a plain Python value."""
    return value.item() if hasattr(value, "item") else value


def edge_notes(best: dict[str, Any], params: dict[str, Dist]) -> list[str]:
    """A note for each numeric optimum within ``EDGE`` of its range's bound."""
    notes = []
    for key, value in best.items():
        dist = params.get(key)
        if dist is None or dist.kind == "choice" or value is None:
            continue
        where = position(float(value), dist)
        side = "low" if where <= EDGE else "high" if where >= 1 - EDGE else None
        low, high = dist.args
        if side == "low" and low == 0:  # nothing below 0 (no warmup, no weight decay)
            notes.append(
                f"`{key}` = {label(value)} is near 0, its lower bound: little or none is best"
            )
        elif side:
            notes.append(
                f"`{key}` = {label(value)} sits at the {side} edge of [{label(low)}, {label(high)}]: "
                "widen the range"
            )
    return notes


def position(value: float, dist: Dist) -> float:
    """Where ``value`` lies in ``dist``'s range, 0 (low) to 1 (high); log scale for loguniform."""
    low, high = (float(a) for a in dist.args)  # type: ignore[arg-type]
    if dist.kind == "loguniform":
        value, low, high = math.log(max(value, 1e-300)), math.log(low), math.log(high)
    return (value - low) / (high - low)


def _key(value: float | None, mode: str) -> float:
    if value is None or not math.isfinite(value):
        return math.inf
    return value if mode == "min" else -value


def _pairs(arms: list[Arm], mode: str) -> list[Pair]:
    """Welch's t-test for every pair of arms with two or more confirmation seeds each."""
    from scipy import stats

    raw = []
    for i, a in enumerate(arms):
        for b in arms[i + 1 :]:
            if len(a.confirmed) < 2 or len(b.confirmed) < 2:
                continue
            var_a, var_b = np.var(a.confirmed, ddof=1), np.var(b.confirmed, ddof=1)
            diff = a.score - b.score
            if var_a + var_b == 0:  # deterministic trainables: any difference is real
                p = 0.0 if diff != 0 else 1.0
            else:
                p = float(stats.ttest_ind(a.confirmed, b.confirmed, equal_var=False).pvalue)
            raw.append((a, b, diff, hedges_g(a.confirmed, b.confirmed), p))
    if not raw:
        return []
    adjusted = holm([r[4] for r in raw])
    return [Pair(*r, p_holm=float(h)) for r, h in zip(raw, adjusted, strict=True)]


def _rank(arms: list[Arm], pairs: list[Pair], mode: str) -> None:
    """Competition ranking (1, 1, 3): an arm not significantly worse than its group's leader
    shares the leader's rank. Without tests every arm has its own rank."""
    tested = {frozenset((p.a.index, p.b.index)): p.significant for p in pairs}
    order = sorted(arms, key=lambda a: _key(a.score, mode))
    leader: Arm | None = None
    for position_, arm in enumerate(order, start=1):
        same = leader is not None and tested.get(frozenset((leader.index, arm.index))) is False
        if same and leader is not None:
            arm.rank = leader.rank
            arm.tied = leader.tied = True
        else:
            arm.rank, leader = position_, arm


def _shared(arms: list[Arm], params: dict[str, Dist]) -> tuple[str | None, Any, str]:
    """The untuned reading's parameter and value: the most common of the arms' optima."""
    key = "train.lr" if "train.lr" in params else next(iter(params))
    dist = params[key]
    optima = [a.best[key] for a in arms if a.best.get(key) is not None]
    if not optima:
        return None, None, ""
    if dist.kind == "choice":
        values, counts = np.unique(np.array(optima, dtype=object).astype(str), return_counts=True)
        top = values[int(np.argmax(counts))]
        value = next(o for o in optima if str(o) == top)
        return key, value, f"the optimum of {int(counts.max())} of {len(optima)} arms"
    scale = [position(float(o), dist) for o in optima]
    width = (
        math.log(SAME_FACTOR) / (math.log(float(dist.args[1])) - math.log(float(dist.args[0])))  # type: ignore[arg-type]
        if dist.kind == "loguniform"
        else EDGE
    )
    groups = [[j for j, s in enumerate(scale) if abs(s - c) <= width] for c in scale]
    group = max(groups, key=lambda g: (len(g), -np.ptp([scale[j] for j in g])))
    if len(group) == 1:
        group, why = list(range(len(optima))), "no two arms agree: the median of their optima"
    else:
        why = f"the optimum of {len(group)} of {len(optima)} arms"
    mid = float(np.median([scale[j] for j in group]))
    low, high = (float(a) for a in dist.args)  # type: ignore[arg-type]
    if dist.kind == "loguniform":
        value: Any = math.exp(math.log(low) + mid * (math.log(high) - math.log(low)))
    else:
        value = low + mid * (high - low)
        value = round(value) if dist.kind == "int" else value
    return key, value, why


def _untuned(arm: Arm, ok: pd.DataFrame, key: str, value: Any, dist: Dist, metric: str) -> None:
    """The arm's tuning trial nearest to the shared value (in log space for loguniform)."""
    rows = ok[(ok[ARM_KEY] == arm.index) & (ok[PHASE_KEY] == Phase.TUNE.value)]
    if not len(rows) or key not in rows:
        return
    if dist.kind == "choice":
        near = rows[rows[key].astype(str) == str(value)]
        if not len(near):
            return
        row = near.iloc[0]
    else:
        where = position(float(value), dist)
        far = rows[key].astype(float).map(lambda v: abs(position(v, dist) - where))
        row = rows.loc[far.idxmin()]
    arm.untuned_value, arm.untuned_at = float(row[metric]), python(row[key])


def _num(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _plain(value: Any) -> Any:
    value = python(value)
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
