"""ASHA that tells a pruned trial from a finished one (imported only with Ray)."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from abl.search.sinks.base import PRUNED_MARK, STATUS_KEY


class MarkingASHA(ASHAScheduler):
    """ASHA that marks the trials it stops early, so the sinks record them as ``pruned``.

    ASHA answers STOP both for a trial it prunes and for one that reached ``max_t``; only the
    first is pruned. Without the mark, a custom trainable that never reports ``trial/status``
    could not be told apart from a pruned one.
    """

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        """ASHA's decision; a STOP before ``max_t`` and before the trial said it ended marks it."""
        decision = super().on_trial_result(tune_controller, trial, result)
        ended = result.get(self._time_attr, 0) >= self._max_t or STATUS_KEY in result
        if decision == TrialScheduler.STOP and not ended:
            setattr(trial, PRUNED_MARK, True)
        return decision
