"""ASHA that tells a pruned trial from a finished one, and ASHA for the members of trial packs
(imported only with Ray)."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from abl.results.store import TrialStatus
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


class _Member:
    """What Tune's ASHA reads of a trial: its id (a pack member's, ``<pack>.<index>``)."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


class MemberRungs:
    """ASHA for the members of trial packs (:mod:`abl.search.packs`): Tune's public
    ``AsyncHyperBandScheduler``, given one stand-in trial per member.

    Tune's schedulers stop whole trials, and a pack is one Tune trial; so the pack asks this
    keeper (a Ray actor, one per sweep) after each epoch which of its members to stop, before
    it reports, and drops them from its stack. A member's ``training_iteration`` is its
    ``epoch``. The rungs are ASHA's, shared by every member of every pack, in the order their
    results arrive, as a solo trial's results reach Tune's ASHA.
    """

    def __init__(self, metric: str, mode: str, **asha: Any) -> None:
        self.asha = AsyncHyperBandScheduler(metric=metric, mode=mode, **asha)
        self.time_attr = asha.get("time_attr", "training_iteration")
        self.max_t = asha.get("max_t", 100)
        self.known: set[str] = set()
        self.pruned: set[str] = set()  # members stopped early, even if a restore revives them

    def _record(self, member: str, result: dict) -> str:
        if member not in self.known:
            self.known.add(member)
            self.asha.on_trial_add(None, _Member(member))
        return self.asha.on_trial_result(None, _Member(member), result)

    def decide(self, results: dict[str, dict]) -> dict[str, str]:
        """The members to stop now, each with its status (``pruned``, or ``completed`` at
        ``max_t``), for one epoch's ``results`` of one pack (member id -> report). A report
        that already says how the member ended (``trial/status``) is recorded, not stopped."""
        stops: dict[str, str] = {}
        for member, result in results.items():
            if member in self.pruned:  # pruned before its pack was restored from a checkpoint
                stops[member] = TrialStatus.PRUNED.value
                continue
            decision = self._record(member, result)
            if decision != TrialScheduler.STOP or STATUS_KEY in result:
                continue
            if result.get(self.time_attr, 0) >= self.max_t:
                stops[member] = TrialStatus.COMPLETED.value
            else:
                stops[member] = TrialStatus.PRUNED.value
                self.pruned.add(member)
        return stops

    def replay(self, reports: list[tuple[str, dict]], pruned: set[str]) -> None:
        """Rebuild the rungs of a resumed sweep from its store: each member's reports in step
        order (ASHA records a member's value once per rung, so the rungs come out as they
        were), and the members it had pruned."""
        for member, result in reports:
            self._record(member, result)
        self.pruned |= pruned
