"""Adaptive seeds, read back: the searcher's rounds replayed from ``trials.parquet``.

A space with ``repeats: {min, max, ...}`` (or a tuned ablation's ``confirm: {min, max, ...}``)
ran :class:`abl.search.adaptive.AdaptiveSeeds`, which gave a configuration its next seed only
while one of its comparisons was open. :func:`seed_rounds` rebuilds the same inputs from the
trials (configuration, seed index, final value) and calls the same
:func:`abl.results.sequential.assess`, so the report states what the sweep decided, for each
configuration how many seeds it ran and why it stopped::

    from abl.results import load_run
    from abl.results.seeds import seed_rounds

    run = load_run(run_dir)
    rounds = seed_rounds(run.trials, run.space)
    for status, name in zip(rounds.assessment.configs, rounds.labels):
        print(name, status.seeds, status.why)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from abl.results._design import label, python_value
from abl.results.aggregate import split_trials
from abl.results.sequential import Assessment, Comparison, SeedPlan, assess
from abl.results.store import TrialStatus
from abl.space.schema import ARM_KEY, PHASE_KEY, Phase, Space, arm_keys

UNFINISHED = (TrialStatus.PENDING.value, TrialStatus.RUNNING.value)


@dataclass(frozen=True)
class SeedReplay:
    """What adaptive seeds did in a run."""

    plan: SeedPlan
    assessment: Assessment
    keys: list[str]  # the swept parameters that tell configurations apart
    swept: list[dict[str, Any]]  # per configuration, its values of ``keys``
    labels: list[str]  # per configuration, ``key=value, ...``
    trials: int  # seed trials run (a tuned ablation: confirmation trials)
    most: int  # what fixed ``repeats: max`` would have run
    key: str = "repeats"  # the space's key: repeats, or a tuned ablation's confirm

    @property
    def comparisons(self) -> list[Comparison]:
        """The comparisons to state: a pair that an axis of one cell also compares, once."""
        found = self.assessment.comparisons
        axis_pairs = {c.members for c in found if c.axis is not None}
        return [c for c in found if c.axis is not None or c.members not in axis_pairs]

    def to_json(self) -> dict[str, Any]:
        """What importance.json says of the seeds: counts, each decision, each configuration."""
        verdicts = [c.verdict for c in self.comparisons]
        return {
            "min": self.plan.min,
            "max": self.plan.max,
            "alpha": self.plan.alpha,
            "margin": self.plan.margin,
            "trials": self.trials,
            "most": self.most,
            "futility": self.plan.futility,
            "decided": sum(v not in ("open", "futile") for v in verdicts),
            "futile": sum(v == "futile" for v in verdicts),
            "open": sum(v == "open" for v in verdicts),
            "decisions": [
                {
                    "axis": c.axis,
                    "a": c.a,
                    "b": c.b,
                    "verdict": str(c.verdict),
                    "n": c.n,
                    "diff": c.diff if math.isfinite(c.diff) else None,
                    "p_holm": c.p_holm,
                    "look": c.look,
                }
                for c in self.comparisons
            ],
            "configs": [
                {**swept, "seeds": st.seeds, "why": st.why}
                for swept, st in zip(self.swept, self.assessment.configs, strict=True)
            ],
        }

    @property
    def share(self) -> float:
        """Trials run as a share of fixed ``max`` seeds."""
        return self.trials / self.most if self.most else math.nan


def plan_of(space: Space) -> SeedPlan | None:
    """The adaptive seed plan of a space, if it has one."""
    adaptive = space.adaptive
    if adaptive is None:
        return None
    return SeedPlan(
        min=adaptive.min,
        max=adaptive.max,
        alpha=adaptive.alpha,
        margin=adaptive.margin,
        futility=adaptive.futility,
    )


def seed_rounds(trials: pd.DataFrame, space: Space) -> SeedReplay | None:
    """The adaptive seeds of a run replayed from its trials (None without adaptive seeds).

    A configuration with a seed that was pruned, failed, diverged or has no value took no
    more seeds, as in the sweep; its comparisons do not keep the others open.
    """
    plan = plan_of(space)
    if plan is None or not len(trials):
        return None
    base = int(space.fixed.get("seed", 0) or 0)
    if space.tune is not None:
        keys = arm_keys(space)
        trials = trials[trials[PHASE_KEY] == Phase.CONFIRM.value] if PHASE_KEY in trials else trials
        group = trials[ARM_KEY].map(lambda v: (int(v),)) if ARM_KEY in trials else None
        base += 1  # confirmation seeds start after the tuning seed
    else:
        keys = [k for k in space.sweep_keys() if k != "seed"]
        group = None
    if group is None:
        group = trials.apply(lambda r: tuple(label(r.get(k)) for k in keys), axis=1)
    order = list(dict.fromkeys(sorted(group, key=str) if space.tune is not None else group))
    index = {g: i for i, g in enumerate(order)}
    swept: list[dict[str, Any]] = [{} for _ in order]
    values: list[dict[int, float]] = [{} for _ in order]
    split = split_trials(trials, space.metric)
    ok = set(split.ok.index)
    closed: set[int] = set()
    for (row_index, row), g in zip(trials.iterrows(), group, strict=True):
        i = index[g]
        if not swept[i]:
            swept[i] = {k: python_value(row.get(k)) for k in keys}
        seed = int(row.get("seed", base) or 0) - base
        if row_index in ok:
            values[i][seed] = float(row[space.metric])
        elif str(row.get("status")) not in UNFINISHED:
            closed.add(i)
    assessment = assess(swept, values, plan, space.mode, pruned=closed)
    labels = [", ".join(f"{k}={label(s.get(k))}" for k in keys) for s in swept]
    return SeedReplay(
        plan=plan,
        assessment=assessment,
        keys=keys,
        swept=swept,
        labels=labels,
        trials=len(trials),
        most=len(order) * plan.max,
        key="confirm" if space.tune is not None else "repeats",
    )
