"""Tuned ablations on Ray Tune: one Optuna study per arm, suggestions round-robin, then confirmation.

    abl search spaces/qk_norm_tuned.yaml

A fair ablation tunes the nuisance parameters (``tune.params``: learning rate, warmup...)
separately for every arm (grid cell), then compares the arms at their best. The whole ablation
is one Ray Tune run with one :class:`TunedSearcher`, not a sweep per arm: arms then run
concurrently, share the cluster, and are pruned by one ASHA scheduler.

The searcher keeps one Optuna study per arm (its own seeded sampler), hands out tuning trials
round-robin (the arm with the fewest asked, then the fewest running, first), and as soon as all
tuning trials of an arm are done, the arm's ``confirm`` trials: its best nuisance setting again
with seeds that tuning never used. An arm confirms without waiting for the others, because its
confirmation needs nothing from them, and its seeds then fill slots that would otherwise idle.
With ASHA, :class:`TunedASHA` keeps rungs per arm (a weak arm is not starved by a strong
one's cutoffs) and never prunes confirmation trials: their values are what the report compares. Every trial config carries ``tune.phase`` and ``tune.arm`` (see
:data:`abl.space.schema.MARK_KEYS`), which become columns of ``trials.parquet``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState
from ray.tune.search import Searcher

from abl.results.seeds import plan_of
from abl.results.sequential import SeedPlan
from abl.results.store import read_trials
from abl.search._asha import MarkingASHA
from abl.search.adaptive import PickledSearcher, SeedRounds, finite
from abl.space.schema import ARM_KEY, PHASE_KEY, Dist, Phase, Space, arm_keys
from abl.space.variants import arm_configs

MAX_STARTUP = 10  # Optuna's default number of random trials before TPE models the results


def distribution(dist: Dist) -> BaseDistribution:
    """The Optuna distribution of a space distribution (``int`` bounds inclusive)."""
    if dist.kind == "choice":
        return CategoricalDistribution(list(dist.args))
    low, high = dist.args
    if dist.kind == "int":
        return IntDistribution(int(low), int(high))  # type: ignore[arg-type]
    return FloatDistribution(float(low), float(high), log=dist.kind == "loguniform")  # type: ignore[arg-type]


def make_sampler(algorithm: str, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    """``random`` or ``tpe``; TPE starts modelling after a third of the arm's budget (2 to 10)."""
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = min(MAX_STARTUP, max(2, trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


@dataclass
class Tried:
    """One tuning trial of an arm, as its study saw it."""

    arm: int
    params: dict[str, Any]  # the nuisance values
    state: TrialState  # COMPLETE, PRUNED (stopped before max_t) or FAIL
    value: float | None  # the last reported metric
    steps: int  # training iterations reached


@dataclass
class _Live:
    arm: int
    phase: Phase
    trial: optuna.trial.Trial | None  # the study's trial, for tuning trials
    value: float | None = None
    steps: int = 0
    seed: int = 0  # a confirmation trial's seed index


class TunedSearcher(PickledSearcher):
    """A Tune Searcher that tunes ``params`` within every arm, then confirms each arm's best.

    >>> searcher = TunedSearcher(arms=[{"model.qk_norm": "none"}, {"model.qk_norm": "rms_norm"}],
    ...     params={"train.lr": Dist(kind="loguniform", args=(1e-4, 1e-2))}, trials=4, confirm=2,
    ...     metric="val/loss", mode="min")
    >>> searcher.suggest("t0")["tune.phase"], searcher.suggest("t1")["tune.arm"]
    ('tune', 1)
    """

    def __init__(
        self,
        *,
        arms: list[dict[str, Any]],
        params: dict[str, Dist],
        trials: int,
        confirm: int = 0,
        algorithm: str = "tpe",
        seed: int = 0,
        base_seed: int = 0,
        metric: str | None = None,
        mode: str | None = None,
        max_t: int | None = None,
        adaptive: SeedPlan | None = None,
        swept: list[dict[str, Any]] | None = None,
        run_dir: Path | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.run_dir = run_dir  # whose trials.parquet a resume reconciles with
        self.arms = [dict(a) for a in arms]  # full given configs, one per arm
        self.dists = {k: distribution(d) for k, d in params.items()}
        self.trials = trials  # tuning trials per arm
        self.confirm = confirm  # confirmation seeds per arm (adaptive: at most)
        # Adaptive confirmation: seeds only while the arm's comparisons are open. ``swept`` is
        # each arm's scientific parameters (what the comparisons tell apart).
        self.rounds = (
            None if adaptive is None else SeedRounds(swept or self.arms, adaptive, mode or "min")
        )
        self.algorithm = algorithm
        self.seed = seed  # arm i's sampler gets seed + i
        self.base_seed = base_seed  # tuning runs on it; confirmation on base_seed + 1..confirm
        self.max_t = max_t  # iterations of a full trial when a scheduler may prune, else None
        self.studies: list[optuna.Study] = []  # created on the first suggestion (needs mode)
        self.asked = [0] * len(arms)
        self.confirmed = [0] * len(arms)  # confirmation trials handed out
        self.tried: list[Tried] = []
        self.live: dict[str, _Live] = {}
        self._turn = 0

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        """Take metric and mode from Tune's config where the constructor had none."""
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """A tuning trial, else a confirmation trial, else None (wait) or FINISHED."""
        if not self.studies:
            self._create_studies()
        arm = self._next_tuning_arm()
        if arm is not None:
            trial = self.studies[arm].ask(self.dists)
            self.asked[arm] += 1
            self.live[trial_id] = _Live(arm, Phase.TUNE, trial)
            return self._config(arm, Phase.TUNE, trial.params, self.base_seed)
        for arm in range(len(self.arms)):
            best = self.best(arm) if self.tuned(arm) else None
            if best is None:
                continue
            index = self._next_confirmation(arm)
            if index is not None:
                self.live[trial_id] = _Live(arm, Phase.CONFIRM, None, seed=index)
                seed = self.confirm_seeds()[index]
                return self._config(arm, Phase.CONFIRM, best.params, seed)
        return Searcher.FINISHED if not self.live else None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Remember the last value; tuning trials report it to their study (TPE reads pruned ones)."""
        live = self.live.get(trial_id)
        value = finite(result.get(self.metric))
        if live is None or value is None:
            return
        live.value, live.steps = value, int(result.get("training_iteration", live.steps + 1))
        if live.trial is not None:
            live.trial.report(value, live.steps)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Tell the arm's study how the tuning trial ended: complete, pruned or failed."""
        live = self.live.pop(trial_id, None)
        if live is None:
            return
        if result is not None and not error:
            self._final(live, result)
        if live.trial is None:
            if self.rounds is not None:
                why_not = f"seed {live.seed} failed" if error or live.value is None else None
                self.rounds.record(live.arm, live.seed, live.value, why_not)
            return
        state = TrialState.FAIL if error or live.value is None else TrialState.COMPLETE
        if state is TrialState.COMPLETE and self.max_t is not None and live.steps < self.max_t:
            state = TrialState.PRUNED
        study = self.studies[live.arm]
        study.tell(live.trial, live.value if state is TrialState.COMPLETE else None, state=state)
        self.tried.append(Tried(live.arm, live.trial.params, state, live.value, live.steps))

    def restore(self, checkpoint_path: str) -> None:
        """Continue from :meth:`save`'s file, reconciled with the run directory's trials."""
        super().restore(checkpoint_path)
        if getattr(self, "run_dir", None) is not None:
            self.reconcile(read_trials(self.run_dir).to_pylist())

    def reconcile(self, rows: list[dict[str, Any]]) -> int:
        """End the running trials that the run directory's rows say ended after Tune's last
        snapshot; returns how many.

        The Parquet store writes a trial's end the moment it ends; Tune's snapshot (this
        searcher's state in it) is written at the end of the step and copied to the run
        directory in the background, a step or more later. A resume does not run such a trial
        again (``mark_statuses`` ends it in the snapshot), so Tune never reports it here: left
        running, its arm would wait for it for ever. It ends from its row instead.
        """
        taken = 0
        for row in rows:
            status, trial_id = row.get("status"), str(row.get("trial_id"))
            if status in ("pending", "running") or trial_id not in self.live:
                continue
            result = {self.metric: row.get(self.metric), "training_iteration": row.get("steps")}
            self.on_trial_complete(trial_id, result, error=status == "errored")
            taken += 1
        return taken

    def _final(self, live: _Live, result: dict) -> None:
        """The result a trial stopped on (Tune passes a pruning result only here)."""
        value = finite(result.get(self.metric))
        steps = int(result.get("training_iteration") or live.steps)
        if value is None or steps < live.steps:
            return
        if live.trial is not None and steps > live.steps:
            live.trial.report(value, steps)
        live.value, live.steps = value, steps

    def tuned(self, arm: int) -> bool:
        """Whether every tuning trial of ``arm`` has ended."""
        done = sum(1 for t in self.tried if t.arm == arm)
        return self.asked[arm] == self.trials and done == self.trials

    def best(self, arm: int) -> Tried | None:
        """The arm's best tuning trial: completed ones first (a pruned value is not final)."""
        sign = 1.0 if self.mode == "min" else -1.0
        tried = [t for t in self.tried if t.arm == arm and t.value is not None]
        if not tried:
            return None
        return min(
            tried, key=lambda t: (t.state is not TrialState.COMPLETE, -t.steps, sign * t.value)
        )

    def _next_confirmation(self, arm: int) -> int | None:
        """The seed index of the arm's next confirmation trial, if it takes one now."""
        if self.rounds is not None:
            index = self.rounds.next_seed(arm)
            if index is not None:
                self.confirmed[arm] += 1
            return index
        if self.confirmed[arm] >= self.confirm:
            return None
        self.confirmed[arm] += 1
        return self.confirmed[arm] - 1

    def confirm_seeds(self) -> list[int]:
        """The confirmation seeds: never the tuning seed."""
        return [self.base_seed + 1 + k for k in range(self.confirm)]

    def _create_studies(self) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        direction = "minimize" if self.mode == "min" else "maximize"
        self.studies = [
            optuna.create_study(
                direction=direction,
                sampler=make_sampler(self.algorithm, self.seed + i, self.trials),
            )
            for i in range(len(self.arms))
        ]

    def _next_tuning_arm(self) -> int | None:
        """Round-robin: the arm with the fewest trials asked, then the fewest running."""
        n = len(self.arms)
        running = [0] * n
        for live in self.live.values():
            running[live.arm] += 1
        open_arms = [a for a in range(n) if self.asked[a] < self.trials]
        if not open_arms:
            return None
        arm = min(open_arms, key=lambda a: (self.asked[a], running[a], (a - self._turn) % n))
        self._turn = (arm + 1) % n
        return arm

    def _config(self, arm: int, phase: Phase, params: dict[str, Any], seed: int) -> dict:
        return {
            **self.arms[arm],
            **params,
            "seed": seed,
            PHASE_KEY: phase.value,
            ARM_KEY: arm,
        }


class TunedASHA(MarkingASHA):
    """ASHA for tuned ablations: rungs per arm, and confirmation trials never pruned.

    Each arm's tuning trials are compared only with each other. Rungs shared by all arms
    starve the weaker arms: their trials fall below the stronger arms' cutoffs at the first
    rung and no trial of theirs runs to the end. On bench ``search_efficiency``'s landscape,
    after the grid's compute, the weakest arm's best was still 44-59% above its grid best with
    shared rungs (every search seed), and within 3.3% with rungs per arm.
    """

    def arm(self, trial: Any) -> Any:
        """The trial's arm (in a tuple: a trial may lack one); None for a confirmation trial."""
        if trial.config.get(PHASE_KEY) == Phase.CONFIRM.value:
            return None
        return (trial.config.get(ARM_KEY),)


def tuned_searcher(
    space: Space, trainable: Any, *, max_t: int | None, run_dir: Path | None = None
) -> TunedSearcher:
    """The searcher of a tuned space; ``max_t`` is the full trial length when ASHA runs, and
    ``run_dir`` the run directory whose trials a resume reconciles with."""
    if space.tune is None:
        raise ValueError(f"{space.source} has no tune: block")
    arms = arm_configs(space, trainable.resolve({}, space.source))
    return TunedSearcher(
        arms=arms,
        params=space.tune.params,
        trials=space.tune.trials,
        confirm=space.confirm_seeds,
        algorithm=space.tune.algorithm,
        seed=space.tune.seed,
        base_seed=int(space.fixed.get("seed", 0) or 0),
        metric=space.metric,
        mode=space.mode,
        max_t=max_t,
        adaptive=plan_of(space),
        swept=[{k: arm.get(k) for k in arm_keys(space)} for arm in arms],
        run_dir=run_dir,
    )
