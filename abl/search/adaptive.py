"""Adaptive seeds on Ray Tune: one more seed only where a comparison is still open.

    repeats: {min: 2, max: 10, alpha: 0.05, margin: 0.01}

:class:`AdaptiveSeeds` is a Tune ``Searcher`` over a fixed list of configurations (a grid or
random space's, expanded up front). Every configuration gets ``min`` seeds; when every
configuration still open has its seeds of the round, :func:`abl.results.sequential.assess`
looks at the results, and only the configurations that take part in an undecided comparison
(against the leader, or between two values of an ablation axis) get the next seed, until every
comparison is decided or they reach ``max``. Being a Searcher, it runs under Tune's concurrency
limit and with ASHA (a configuration whose seed was pruned, diverged or failed takes no more
seeds), and Tune pickles it into its experiment state, so ``--resume`` continues its rounds
without running a seed twice. The report replays the same assessment from ``trials.parquet``.

:class:`SeedRounds` is the bookkeeping the Searcher and a tuned ablation's confirmation phase
(:class:`abl.search.tuned.TunedSearcher`) share.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from abl.results.seeds import plan_of
from abl.results.sequential import Assessment, SeedPlan, assess
from abl.results.store import read_trials
from abl.search.sinks.base import STATUS_KEY
from abl.space.schema import Space


class PickledSearcher(Searcher):
    """A Tune Searcher whose whole state is pickled into Tune's experiment checkpoint."""

    def save(self, checkpoint_path: str) -> None:
        """Pickle the whole state for Tune's experiment checkpoint."""
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__.copy(), f)

    def restore(self, checkpoint_path: str) -> None:
        """Continue from :meth:`save`'s file (``abl search --resume``)."""
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a finite number."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass
class _Live:
    config: int  # index of the configuration
    seed: int  # seed index (0-based) within it
    value: float | None = None  # the last reported metric
    steps: int = 0
    status: str | None = None  # the trainable's own last word (trial/status)


class SeedRounds:
    """Which configuration takes which seed next, from the results so far.

    ``swept[i]`` is configuration i's swept parameters (what the comparisons tell apart).
    """

    def __init__(self, swept: list[dict[str, Any]], plan: SeedPlan, mode: str) -> None:
        self.swept = swept
        self.plan = plan
        self.mode = mode
        self.values: list[dict[int, float]] = [{} for _ in swept]
        self.handed = [0] * len(swept)  # seed indices handed out, per configuration
        self.closed: dict[int, str] = {}  # configuration -> why it takes no more seeds
        self.assessment: Assessment | None = None

    def next_seed(self, config: int, ahead: int = 0) -> int | None:
        """The seed index configuration ``config`` should start now, if any; ``ahead=1`` also
        allows the seed of the round after this one (to fill a slot that would idle)."""
        if config in self.closed or self.handed[config] >= self.target(config, ahead):
            return None
        seed = self.handed[config]
        self.handed[config] += 1
        return seed

    def target(self, config: int, ahead: int = 0) -> int:
        """Seeds configuration ``config`` should have by the end of the current round (and
        ``ahead`` rounds more, if it is open)."""
        a = self.assessment
        if a is None or a.looks == 0:
            return min(self.plan.max, self.plan.min + ahead)
        if not a.configs[config].open:
            return self.handed[config]
        # Usually one more seed; more when a change of leader reopened the configuration.
        return min(self.plan.max, a.need + ahead)

    def record(self, config: int, seed: int, value: float | None, why_not: str | None) -> None:
        """A seed ended: its final value, or why it has none (then the configuration closes)."""
        if value is None or why_not is not None:
            self.closed.setdefault(config, why_not or "no value")
        else:
            self.values[config][seed] = value
        self.assessment = assess(
            self.swept, self.values, self.plan, self.mode, pruned=set(self.closed)
        )


class AdaptiveSeeds(PickledSearcher):
    """A Tune Searcher that spends seeds where the comparisons are still open.

    ``variants[i][s]`` is configuration i's trial config with seed index s (``max`` of them).
    ``max_t`` is a full trial's length when a scheduler may stop trials early (a trial that
    stops short of it without saying it completed counts as pruned).
    """

    def __init__(
        self,
        *,
        variants: list[list[dict[str, Any]]],
        swept: list[dict[str, Any]],
        plan: SeedPlan,
        metric: str,
        mode: str,
        max_t: int | None = None,
        max_concurrent: int | None = None,
        slots: int | None = None,
        run_dir: Path | None = None,
        pack: int = 1,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.variants = variants
        # pack > 1: each round's seeds train fused, up to this many to a Tune trial
        # (abl.search.packs); members are tracked as <pack trial id>.<index>
        self.pack = pack
        self.queue: list[list[tuple[int, int]]] = []  # packs of the round not yet started
        self.rounds = SeedRounds(swept, plan, mode)
        self.max_t = max_t
        # Limited here, not by Tune's ConcurrencyLimiter: a resume may end trials that the
        # limiter's own pickled state would hold as running forever (see restore).
        self.max_concurrent = max_concurrent
        # Trials that run at once (the concurrency, else what the cluster's CPUs hold): a
        # next-round seed is only started into a slot that would otherwise idle.
        self.slots = max_concurrent or slots or 1
        self.run_dir = run_dir  # whose trials.parquet a resume reconciles with
        self.live: dict[str, _Live] = {}

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        """Metric and mode come from the space; Tune's are the same."""
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next seed of the first configuration that wants one; None: wait for results."""
        if self.pack > 1:
            return self._suggest_pack(trial_id)
        if self.max_concurrent and len(self.live) >= self.max_concurrent:
            return None
        # A round's seeds first. While the round's last trials run, a slot that would idle
        # takes an open configuration's next-round seed: it costs no time, and a look uses
        # only the seeds it is due (the seed is wasted if the configuration closes).
        ahead = (0, 1) if len(self.live) < self.slots else (0,)
        for extra in ahead:
            for config in range(len(self.variants)):
                seed = self.rounds.next_seed(config, extra)
                if seed is not None:
                    self.live[trial_id] = _Live(config, seed)
                    return dict(self.variants[config][seed])
        # Nothing to start and nothing running: no result can open another seed.
        return Searcher.FINISHED if not self.live else None

    def _suggest_pack(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next pack of the seeds due this round (a round's packs first, cut by
        :func:`abl.space.variants.packs`); no seed of the next round goes ahead."""
        from abl.search.packs import MEMBERS_KEY, member_id, pack_of
        from abl.space.variants import packs

        if self.max_concurrent and len({pack_of(k) for k in self.live}) >= self.max_concurrent:
            return None
        if not self.queue:
            due = [
                (config, seed)
                for config in range(len(self.variants))
                for seed in iter(lambda c=config: self.rounds.next_seed(c), None)
            ]
            where = {id(self.variants[c][s]): (c, s) for c, s in due}
            configs = [self.variants[c][s] for c, s in due]
            self.queue = [[where[id(m)] for m in p] for p in packs(configs, self.pack)]
        if not self.queue:
            return Searcher.FINISHED if not self.live else None
        members = self.queue.pop(0)
        for i, (config, seed) in enumerate(members):
            self.live[member_id(trial_id, i)] = _Live(config, seed)
        return {MEMBERS_KEY: json.dumps([self.variants[c][s] for c, s in members])}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Remember the trial's last value of the metric (each member's, for a pack)."""
        for live, own in self._reports(trial_id, result):
            self._take(live, own)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Record the seed's final value (or why it has none) and look again (for a pack:
        each member's seed)."""
        from abl.search.packs import pack_of

        if result is not None:
            for live, own in self._reports(trial_id, result):
                self._take(live, own)
        for key in [k for k in self.live if pack_of(k) == trial_id]:
            live = self.live.pop(key)
            self.rounds.record(live.config, live.seed, live.value, self._why_not(live, error))

    def _reports(self, trial_id: str, result: dict) -> list[tuple[_Live, dict]]:
        """Each live seed a Tune trial's report speaks for, with its own report: the trial's,
        or each member's of a pack."""
        from abl.search.packs import member_id, member_results

        members = member_results(result)
        if members is None:
            live = self.live.get(trial_id)
            return [] if live is None else [(live, result)]
        keys = {i: member_id(trial_id, i) for i in members}
        return [(self.live[keys[i]], own) for i, own in members.items() if keys[i] in self.live]

    def _take(self, live: _Live, result: dict) -> None:
        steps = int(result.get("training_iteration", live.steps))
        if steps < live.steps:
            return
        live.steps = steps
        live.value = finite(result.get(self.metric))
        if isinstance(result.get(STATUS_KEY), str):
            live.status = result[STATUS_KEY]

    def _why_not(self, live: _Live, error: bool) -> str | None:
        if error:
            return f"seed {live.seed} failed"
        if live.status not in (None, "completed"):
            return f"seed {live.seed} {live.status}"
        if live.status is None and self.max_t is not None and live.steps < self.max_t:
            return f"seed {live.seed} pruned"
        if live.value is None:
            return f"seed {live.seed} reported no {self.metric}"
        return None

    def restore(self, checkpoint_path: str) -> None:
        """Continue from :meth:`save`'s file, reconciled with the run directory's trials."""
        super().restore(checkpoint_path)
        if self.run_dir is not None:
            self.reconcile(read_trials(self.run_dir).to_pylist())

    def reconcile(self, rows: list[dict[str, Any]]) -> int:
        """Take in what the run directory's trials say ended after Tune's last snapshot.

        Tune snapshots its state (this searcher's included) every few seconds. A trial that
        ended after the snapshot is not run again on resume (``mark_statuses`` ends it in the
        snapshot, from the Parquet store), so Tune never reports it here: its seed is recorded
        from its row instead, and so is a seed the searcher handed out after the snapshot and
        whose trial has ended. Returns the seeds taken in.
        """
        by_seed = {
            _seed_key(variant): (c, s)
            for c, group in enumerate(self.variants)
            for s, variant in enumerate(group)
        }
        taken = 0
        for row in rows:
            status = row.get("status")
            if status in ("pending", "running"):
                continue
            found = by_seed.get(_seed_key(row, self.variants[0][0]))
            if found is None:
                continue
            config, seed = found
            live = self.live.pop(str(row.get("trial_id")), None)
            if seed in self.rounds.values[config] or config in self.rounds.closed:
                continue
            if live is None and seed < self.rounds.handed[config]:
                continue  # handed out again since the snapshot: its trial reports here
            self.rounds.handed[config] = max(self.rounds.handed[config], seed + 1)
            value = finite(row.get(self.metric)) if status == "completed" else None
            why_not = None if value is not None else f"seed {seed} {status}"
            self.rounds.record(config, seed, value, why_not)
            taken += 1
        return taken


def _seed_key(row: dict[str, Any], like: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """A trial's config as a hashable key (``like``: the keys of a variant, for a row)."""
    keys = sorted(like or row)
    return tuple((k, _plain(row.get(k))) for k in keys)


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value  # numpy scalars from Parquet
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def adaptive_searcher(
    space: Space, variants: list[dict[str, Any]], *, max_t: int | None, run_dir: Path
) -> AdaptiveSeeds:
    """The searcher of a grid or random space with adaptive ``repeats``; ``variants`` are its
    expanded trial configs, ``max`` seeds of each configuration in a row."""
    plan = plan_of(space)
    if plan is None:
        raise ValueError(f"{space.source} has no adaptive repeats")
    per = plan.max
    groups = [variants[i : i + per] for i in range(0, len(variants), per)]
    keys = [k for k in space.sweep_keys() if k != "seed"]
    swept = [{k: group[0].get(k) for k in keys} for group in groups]
    return AdaptiveSeeds(
        variants=groups,
        swept=swept,
        plan=plan,
        metric=space.metric,
        mode=space.mode,
        max_t=max_t,
        max_concurrent=space.search.concurrency,
        slots=_slots(space),
        run_dir=run_dir,
        pack=space.pack,
    )


def _slots(space: Space) -> int | None:
    """How many of the space's trials the connected Ray cluster runs at once (None: no Ray)."""
    import ray

    if not ray.is_initialized():
        return None
    cpus = float(ray.cluster_resources().get("CPU", 0))
    per = space.resources.cpu or 1
    return max(1, int(cpus // per))
