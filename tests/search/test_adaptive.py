"""The adaptive-seeds Searcher driven in-process: rounds, early stops, pruning, save/restore.

The searcher is abl's own Tune ``Searcher``; here it is driven the way Tune drives it
(``suggest``, ``on_trial_result``, ``on_trial_complete``) on planted results, without Ray
workers. Its statistics are :mod:`abl.results.sequential`'s, tested there; these tests check
the mechanism: which seed is asked for when, and that a restored searcher continues the same
rounds. The Ray e2e test is ``tests/e2e/test_adaptive_seeds.py``.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from ray.tune.search import Searcher

from abl.results.sequential import SeedPlan
from abl.search.adaptive import AdaptiveSeeds
from abl.search.tuned import TunedSearcher
from abl.space.schema import ARM_KEY, PHASE_KEY, Dist

MEAN = {"a": 0.0, "b": 1.0, "c": 3.0}  # far apart next to the noise
PLAN = SeedPlan(min=2, max=6, alpha=0.05)


def value(arm: str, seed: int) -> float:
    return MEAN[arm] + random.Random(f"{arm}-{seed}").gauss(0, 0.01)


def searcher(**kw) -> AdaptiveSeeds:
    arms = list(MEAN)
    variants = [[{"arm": a, "seed": s} for s in range(PLAN.max)] for a in arms]
    return AdaptiveSeeds(
        variants=variants,
        swept=[{"arm": a} for a in arms],
        plan=PLAN,
        metric="loss",
        mode="min",
        **kw,
    )


def drive(s: AdaptiveSeeds, workers: int = 2, stop_after: int | None = None) -> list[tuple]:
    """Run the searcher like Tune with ``workers`` slots, trials ending in start order.

    Returns (event, arm, seed) in order: ("start", ...) and ("end", ...). With
    ``stop_after``, stops once that many trials started (the rest left running)."""
    events, running, n = [], [], 0
    while True:
        while len(running) < workers:
            if stop_after is not None and n >= stop_after:
                return events
            config = s.suggest(f"t{n}")
            if config is None or config == Searcher.FINISHED:
                if running:
                    events.append(("idle", "", len(running)))  # a slot left empty
                break
            running.append((f"t{n}", config))
            events.append(("start", config["arm"], config["seed"]))
            n += 1
        if not running:
            assert s.suggest(f"t{n}") == Searcher.FINISHED
            return events
        trial_id, config = running.pop(0)
        loss = value(config["arm"], config["seed"])
        s.on_trial_result(trial_id, {"loss": loss, "training_iteration": 1})
        s.on_trial_complete(trial_id, {"loss": loss, "training_iteration": 1})
        events.append(("end", config["arm"], config["seed"]))


def seeds_of(events: list[tuple]) -> Counter[str]:
    return Counter(arm for kind, arm, _ in events if kind == "start")


def test_every_configuration_gets_min_seeds_then_only_open_ones_more() -> None:
    events = drive(searcher())
    started = [(a, s) for k, a, s in events if k == "start"]
    assert len(started) == len(set(started))  # no seed twice
    per = seeds_of(events)
    assert all(per[a] >= PLAN.min for a in MEAN)
    assert per["c"] < PLAN.max  # far behind the leader: stops early
    assert sum(per.values()) < len(MEAN) * PLAN.max
    for arm, n in per.items():
        assert sorted(s for a, s in started if a == arm) == list(range(n))


def test_a_round_starts_only_when_the_last_one_ended() -> None:
    events = drive(searcher(), workers=3)
    ended: Counter[str] = Counter()
    for kind, arm, seed in events:
        if kind == "end":
            ended[arm] += 1
        elif kind == "start" and seed >= PLAN.min:  # every open arm's previous round ended
            assert all(ended[a] >= seed for a in MEAN if seeds_of(events)[a] > seed)
            assert sum(ended.values()) >= len(MEAN) * PLAN.min


def test_a_slot_that_would_idle_takes_the_next_rounds_seed_and_decides_the_same() -> None:
    strict, eager = searcher(), searcher(slots=3)
    strict_events, eager_events = drive(strict, workers=3), drive(eager, workers=3)
    idle = [sum(k == "idle" for k, _, _ in e) for e in (strict_events, eager_events)]
    assert idle[1] < idle[0]  # fewer empty slots
    started = [(a, s) for k, a, s in eager_events if k == "start"]
    assert len(started) == len(set(started))
    verdicts = [
        [(c.axis, c.a, c.b, c.verdict, c.look) for c in s.rounds.assessment.comparisons]
        for s in (strict, eager)
    ]
    assert verdicts[0] == verdicts[1]  # a look uses the seeds it is due, however early they ran


def test_concurrency_is_limited_by_the_searcher() -> None:
    s = searcher(max_concurrent=2)
    assert s.suggest("t0") is not None and s.suggest("t1") is not None
    assert s.suggest("t2") is None  # waits for a result


def test_a_pruned_seed_closes_its_configuration() -> None:
    s = searcher(max_t=2)
    configs = [s.suggest(f"t{i}") for i in range(6)]  # two seeds of each arm
    for i, config in enumerate(configs):
        steps = 1 if config["arm"] == "b" and config["seed"] == 0 else 2
        loss = value(config["arm"], config["seed"])
        s.on_trial_complete(f"t{i}", {"loss": loss, "training_iteration": steps})
    assert s.rounds.closed == {1: "seed 0 pruned"}
    rest = drive(s)
    assert "b" not in seeds_of(rest)


def test_a_restored_searcher_continues_the_same_rounds(tmp_path: Path) -> None:
    whole = [e for e in drive(searcher()) if e[0] == "start"]
    first = searcher()
    part = drive(first, stop_after=7)  # some trials still running at the "kill"
    first.save(str(tmp_path / "state.pkl"))
    again = searcher()
    again.restore(str(tmp_path / "state.pkl"))
    for trial_id, live in list(again.live.items()):  # Tune runs the unfinished trials again
        loss = value(list(MEAN)[live.config], live.seed)
        again.on_trial_complete(trial_id, {"loss": loss, "training_iteration": 1})
    rest = [e for e in drive(again) if e[0] == "start"]
    starts = [e for e in part if e[0] == "start"] + rest
    assert sorted(starts) == sorted(whole)


def test_reconcile_takes_in_trials_that_ended_after_the_snapshot(tmp_path: Path) -> None:
    whole = sorted(e for e in drive(searcher()) if e[0] == "start")
    live = searcher()
    part = drive(live, stop_after=4)
    live.save(str(tmp_path / "state.pkl"))  # Tune's last snapshot, trials still running
    # After the snapshot the two running trials ended; Tune will not report them again.
    rows = []
    for trial_id, entry in list(live.live.items()):
        arm = list(MEAN)[entry.config]
        rows.append(
            {
                "trial_id": trial_id,
                "status": "completed",
                "arm": arm,
                "seed": entry.seed,
                "loss": value(arm, entry.seed),
            }
        )
    restored = searcher()
    restored.restore(str(tmp_path / "state.pkl"))
    assert rows and restored.reconcile(rows) == len(rows)
    assert not restored.live
    rest = [e for e in drive(restored) if e[0] == "start"]
    assert sorted([e for e in part if e[0] == "start"] + rest) == whole


def test_tuned_ablation_confirms_each_arm_adaptively() -> None:
    arms = [{"model.qk_norm": a} for a in MEAN]
    s = TunedSearcher(
        arms=arms,
        params={"train.lr": Dist(kind="loguniform", args=(1e-4, 1e-2))},
        trials=2,
        confirm=5,
        algorithm="random",
        metric="loss",
        mode="min",
        adaptive=SeedPlan(min=2, max=5),
        swept=arms,
    )
    confirmed: Counter[int] = Counter()
    running: list[tuple[str, dict]] = []
    n = 0
    while True:
        while len(running) < 2:
            config = s.suggest(f"t{n}")
            if config is None or config == Searcher.FINISHED:
                break
            running.append((f"t{n}", config))
            n += 1
        if not running:
            break
        trial_id, config = running.pop(0)
        arm = list(MEAN)[config[ARM_KEY]]
        if config[PHASE_KEY] == "confirm":
            confirmed[config[ARM_KEY]] += 1
        loss = value(arm, config["seed"])
        s.on_trial_result(trial_id, {"loss": loss, "training_iteration": 1})
        s.on_trial_complete(trial_id, {"loss": loss, "training_iteration": 1})
    assert all(2 <= confirmed[i] <= 5 for i in range(3))
    assert confirmed[2] < 5  # arm c, far behind: decided before max
    assert sum(confirmed.values()) < 15


def drive_packs(s: AdaptiveSeeds, workers: int = 2) -> list[list[tuple[str, int]]]:
    """Run a packed searcher like Tune: each suggestion a pack (abl.search.packs), its report
    one result per member, packs ending in start order. Returns each pack's (arm, seed)s."""
    import json

    from abl.search.packs import MEMBERS_KEY

    started, running, n = [], [], 0
    while True:
        while len(running) < workers:
            config = s.suggest(f"p{n}")
            if config is None or config == Searcher.FINISHED:
                break
            members = json.loads(config[MEMBERS_KEY])
            running.append((f"p{n}", members))
            started.append([(m["arm"], m["seed"]) for m in members])
            n += 1
        if not running:
            assert s.suggest(f"p{n}") == Searcher.FINISHED
            return started
        trial_id, members = running.pop(0)
        result = {
            "training_iteration": 1,
            "members": {
                str(i): {"loss": value(m["arm"], m["seed"]), "trial/status": "completed"}
                for i, m in enumerate(members)
            },
        }
        s.on_trial_result(trial_id, result)
        s.on_trial_complete(trial_id, result)


def test_a_packed_searcher_fuses_each_rounds_seeds_and_decides_as_the_unpacked_one() -> None:
    # arms as model kinds, lr per member: every seed of a round may share one pack
    solo, fused = searcher(), searcher(pack=4)
    drive(solo)
    packs = drive_packs(fused)
    ran = [m for p in packs for m in p]
    assert len(ran) == len(set(ran))  # no seed twice
    assert all(1 <= len(p) <= 4 for p in packs)
    assert all(len({arm for arm, _ in p}) == 1 for p in packs)  # "arm" is no per-member key
    assert len(packs) < len(ran)  # fused: fewer Tune trials than seeds
    verdicts = [
        [(c.axis, c.a, c.b, c.verdict, c.look) for c in s.rounds.assessment.comparisons]
        for s in (solo, fused)
    ]
    assert verdicts[0] == verdicts[1]
    assert Counter(a for a, _ in ran) == Counter(
        {a: len(v) for a, v in zip(MEAN, solo.rounds.values, strict=True)}
    )
    for p in packs:  # a pack holds seeds of one round: consecutive seeds of its arm
        seeds = sorted(s for _, s in p)
        assert seeds == list(range(seeds[0], seeds[0] + len(seeds)))
