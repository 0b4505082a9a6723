"""The engine on real Ray: TPE with repeats, ASHA pruning (of trials and of pack members), and
the grid's exact trial list."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

from abl.results.store import read_history, read_trials
from abl.search import SweepOptions, run_sweep
from abl.space import load_space

TINY = ["data.length=300", "data.time_steps=16", "model.d_model=8", "model.is_causal=true"]


def sweep(tmp_path, overrides):
    space = load_space("quickstart", [*TINY, *overrides])
    result = run_sweep(space, SweepOptions(root=tmp_path, sinks=("parquet",), report=False))
    return space, read_trials(result.run_dir).to_pylist(), result


def test_tpe_with_repeats_runs_each_suggestion_once_per_seed(ray_local, tmp_path):
    _, trials, _ = sweep(
        tmp_path,
        [
            "search.algorithm=tpe",
            "search.samples=2",
            "repeats=2",
            "model.pe_type=rope,none",
            "train.epochs=1",
            "search.seed=3",
        ],
    )
    assert len(trials) == 4 and {t["status"] for t in trials} == {"completed"}
    assert Counter(t["seed"] for t in trials) == {0: 2, 1: 2}
    assert all(t["model.pe_type"] in ("rope", "none") and t["train.epochs"] == 1 for t in trials)


def test_asha_prunes_the_hopeless_learning_rate(ray_local, tmp_path):
    _, trials, result = sweep(
        tmp_path,
        [
            "train.lr=1e-2,1e-9",
            "data.length=2000",
            "model.pe_type=rope",
            "repeats=2",
            "train.epochs=4",
            "train.schedule=constant",
            "scheduler.asha.grace_period=1",
            "scheduler.asha.reduction_factor=2",
            "search.concurrency=1",
        ],
    )
    # Sequential trials: the first good one sets every rung; each hopeless one falls below it.
    first = next(t for t in trials if t["train.lr"] == 1e-2 and t["seed"] == 0)
    assert first["status"] == "completed" and first["steps"] == 4
    hopeless = [t for t in trials if t["train.lr"] == 1e-9]
    assert {t["status"] for t in hopeless} == {"pruned"}
    assert all(t["steps"] < 4 and t["predict/mse_batch"] is None for t in hopeless)
    steps = Counter(h["trial_id"] for h in read_history(result.run_dir).to_pylist())
    assert steps == {t["trial_id"]: t["steps"] for t in trials}


def test_grid_runs_exactly_the_expanded_configs(ray_local, tmp_path):
    _, trials, _ = sweep(tmp_path, ["model.pe_type=none,sinpe,rope", "train.epochs=1", "repeats=2"])
    got = sorted((t["model.pe_type"], t["seed"]) for t in trials)
    assert got == sorted((p, s) for p in ("none", "sinpe", "rope") for s in (0, 1))
    assert all(t["data.length"] == 300 and t["model.d_model"] == 8 for t in trials)


def test_tune_keeps_its_json_log_for_resume_and_drops_csv_and_tensorboard(ray_local, tmp_path):
    _, trials, result = sweep(tmp_path, ["model.pe_type=none", "train.epochs=2"])
    trial_dir = result.run_dir / "tune" / trials[0]["trial_id"]
    assert len((trial_dir / "result.json").read_text().splitlines()) == 2  # one line per report
    assert not (trial_dir / "progress.csv").exists()
    assert not list(trial_dir.glob("events.out.tfevents*"))


def test_keys_of_one_model_kind_never_reach_another(ray_local, tmp_path):
    space_file = tmp_path / "kinds.yaml"
    space_file.write_text(
        "name: kinds\ntrainable: forecast\n"
        "fixed: {train.epochs: 1, data.length: 300, data.time_steps: 16, model.d_model: 8}\n"
        "grid: {model.kind: [att, lstm]}\n"
        "when:\n  - if: {model.kind: att}\n    grid: {model.pe_type: [none, rope]}\n"
        "  - if: {model.kind: lstm}\n    fixed: {model.n_layer: 2}\n"
    )
    result = run_sweep(
        load_space(str(space_file)), SweepOptions(root=tmp_path, sinks=("parquet",), report=False)
    )
    trials = read_trials(result.run_dir).to_pylist()
    assert len(trials) == 3 and {t["status"] for t in trials} == {"completed"}, trials
    lstm = next(t for t in trials if t["model.kind"] == "lstm")
    assert lstm["model.n_layer"] == 2 and lstm["model.pe_type"] is None


def test_search_concurrency_one_runs_grid_trials_one_at_a_time(ray_local, tmp_path):
    # Tune ignores max_concurrent_trials when given a generator; the engine must limit it.
    _, trials, result = sweep(
        tmp_path, ["model.pe_type=none,rope", "train.epochs=3", "search.concurrency=1"]
    )
    assert len(trials) == 4
    spans: dict[str, list[float]] = {}
    for row in read_history(result.run_dir).to_pylist():
        spans.setdefault(row["trial_id"], []).append(row["time"])
    ranges = sorted((min(t), max(t)) for t in spans.values())
    assert all(nxt[0] > prev[1] for prev, nxt in itertools.pairwise(ranges))


def test_trials_a_resume_marks_finished_no_longer_hold_the_grid_searchers_places(
    tmp_path: Path,
) -> None:
    """Tune's grid searcher starts no trial while ``max_concurrent`` of its own run. A trial the
    resume marks finished (its snapshot was older than Parquet, e.g. after a full disk) is never
    reported to it again: unless released in its saved state, the resumed sweep waits forever."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from abl.rundir import TUNE_DIR
    from abl.search.engine import mark_statuses

    tune_dir = tmp_path / TUNE_DIR
    tune_dir.mkdir()
    gen = BasicVariantGenerator(points_to_evaluate=[{"x": i} for i in range(4)], max_concurrent=2)
    experiment = {"run": lambda config: None, "config": {"x": None}, "num_samples": 4}
    gen.add_configurations({"e": {**experiment, "storage_path": str(tmp_path)}})
    running = [gen.next_trial(), gen.next_trial()]
    assert gen.next_trial() is None  # two of its own are running
    gen.save_to_dir(str(tune_dir), session_str="s")
    trial_data = [
        [json.dumps({"trial_id": t.trial_id, "status": "RUNNING"}), "{}"] for t in running
    ]
    (tune_dir / "experiment_state-s.json").write_text(json.dumps({"trial_data": trial_data}))

    ids = {t.trial_id for t in running}
    assert mark_statuses(tmp_path, errored=set(), ended=ids) == 2
    resumed = BasicVariantGenerator(points_to_evaluate=[{"x": i} for i in range(4)])
    resumed.restore_from_dir(str(tune_dir))
    assert resumed.next_trial() is not None  # their places are free again


def test_asha_prunes_members_of_a_pack_and_a_resume_rebuilds_its_rungs(ray_local, tmp_path):
    import ray
    from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

    from abl.search._asha import _Member
    from abl.search.engine import member_rungs

    overrides = [
        "train.lr=1e-2,3e-3,1e-4,1e-9",
        "data.length=2000",
        "model.pe_type=rope",
        "repeats=2",
        "train.epochs=4",
        "train.schedule=constant",
        "pack=8",
        "scheduler.asha.grace_period=1",
        "scheduler.asha.reduction_factor=2",
    ]
    space, trials, result = sweep(tmp_path, overrides)
    assert len(trials) == 8 and len({t["trial_id"].rsplit(".", 1)[0] for t in trials}) == 1
    history = read_history(result.run_dir).to_pylist()
    steps = Counter(h["trial_id"] for h in history)
    assert steps == {t["trial_id"]: t["steps"] for t in trials}  # a pruned member stops there

    # One pack: its members reach Tune's ASHA epoch by epoch, in member order.
    metric = space.metric
    asha = AsyncHyperBandScheduler(
        metric=metric, mode=space.mode, time_attr="training_iteration", max_t=4,
        grace_period=1, reduction_factor=2,
    )  # fmt: skip
    order = sorted(history, key=lambda h: (h["epoch"], int(h["trial_id"].rsplit(".", 1)[1])))
    expected = {}
    for h in order:
        if h["epoch"] == 1:
            asha.on_trial_add(None, _Member(h["trial_id"]))
        report = {"training_iteration": h["epoch"], metric: h[metric]}
        stop = asha.on_trial_result(None, _Member(h["trial_id"]), report)
        if stop == TrialScheduler.STOP and h["epoch"] < 4:
            expected[h["trial_id"]] = "pruned"
    status = {t["trial_id"]: t["status"] for t in trials}
    assert {t for t, s in status.items() if s == "pruned"} == set(expected)
    assert 0 < len(expected) < 8 and set(status.values()) == {"pruned", "completed"}

    # The rungs a resume starts from: the members it pruned stay pruned, and a newcomer worse
    # than every member at epoch 1 is below the rung the store recorded.
    keeper = ray.get_actor(member_rungs(space, result.run_dir))
    pruned = next(iter(expected))
    late = {"training_iteration": 1, metric: 1e9 if space.mode == "min" else -1e9}
    decided = ray.get(keeper.decide.remote({pruned: late, "new.0": late}))
    assert decided == {pruned: "pruned", "new.0": "pruned"}


def test_adaptive_seeds_run_each_round_fused_in_packs(ray_local, tmp_path):
    overrides = [
        "train.lr=1e-2,3e-3",  # per member: a round's seeds of both share one pack
        "data.length=2000",
        "model.pe_type=rope",
        "repeats={min: 2, max: 4}",
        "train.epochs=2",
        "pack=8",
    ]
    _, trials, result = sweep(tmp_path, overrides)
    assert {t["status"] for t in trials} == {"completed"}
    assert 4 <= len(trials) <= 8 and result.trials == len(trials)
    by_pack: dict[str, list[tuple[float, int]]] = {}
    for t in trials:
        by_pack.setdefault(t["trial_id"].rsplit(".", 1)[0], []).append((t["train.lr"], t["seed"]))
    seeds = Counter(lr for members in by_pack.values() for lr, _ in members)
    for lr, n in seeds.items():  # each configuration's seeds 0..n-1, none twice
        assert sorted(s for m in by_pack.values() for r, s in m if r == lr) == list(range(n))
    first = min(by_pack.values(), key=lambda m: max(s for _, s in m))
    assert sorted(first) == [(3e-3, 0), (3e-3, 1), (1e-2, 0), (1e-2, 1)]  # round 1, one pack
    assert len(by_pack) < len(trials)
