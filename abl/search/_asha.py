"""ASHA that tells a pruned trial from a finished one (imported only with Ray)."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from abl.search.sinks.base import PRUNED_MARK, STATUS_KEY


class MarkingASHA(FIFOScheduler):
    """ASHA that marks the trials it stops early, so the sinks record them as ``pruned``.

    ASHA answers STOP both for a trial it prunes and for one that reached ``max_t``; only the
    first is pruned. Without the mark, a custom trainable that never reports ``trial/status``
    could not be told apart from a pruned one.

    It wraps Tune's public ``AsyncHyperBandScheduler`` (as Ray's ConcurrencyLimiter wraps a
    Searcher): one per :meth:`arm`, each made with this scheduler's keyword arguments. Trials
    run in FIFO order; a trial whose arm is None is never stopped.
    """

    def __init__(self, **asha: Any) -> None:
        super().__init__()
        self.asha = asha  # AsyncHyperBandScheduler's arguments, metric and mode once Tune sets them
        self.arms: dict[Any, AsyncHyperBandScheduler] = {}
        self.of_trial: dict[str, AsyncHyperBandScheduler] = {}  # trial_id -> its arm's ASHA

    def arm(self, trial: Any) -> Any:
        """Which trials share rungs: all of them (a tuned ablation's: those of one arm)."""
        return 0

    @property
    def metric(self) -> str | None:
        return self.asha.get("metric")

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Tune's metric and mode, unless given to the constructor (ASHA's rule)."""
        if (metric and self.asha.get("metric")) or (mode and self.asha.get("mode")):
            return False
        self.asha.update({k: v for k, v in (("metric", metric), ("mode", mode)) if v})
        return True

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        arm = self.arm(trial)
        if arm is None:
            return
        if arm not in self.arms:
            self.arms[arm] = AsyncHyperBandScheduler(**self.asha)
        self.of_trial[trial.trial_id] = self.arms[arm]
        self.arms[arm].on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        """ASHA's decision; a STOP before ``max_t`` and before the trial said it ended marks it."""
        asha = self.of_trial.get(trial.trial_id)
        if asha is None:
            return TrialScheduler.CONTINUE
        decision = asha.on_trial_result(tune_controller, trial, result)
        time_attr = self.asha.get("time_attr", "training_iteration")
        ended = result.get(time_attr, 0) >= self.asha.get("max_t", 100) or STATUS_KEY in result
        if decision == TrialScheduler.STOP and not ended:
            setattr(trial, PRUNED_MARK, True)
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        asha = self.of_trial.pop(trial.trial_id, None)
        if asha is not None:
            asha.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        asha = self.of_trial.pop(trial.trial_id, None)
        if asha is not None:
            asha.on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "\n".join(a.debug_string() for a in self.arms.values()) or super().debug_string()
