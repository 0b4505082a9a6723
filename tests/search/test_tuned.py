"""Tuned ablations: the tune:/confirm: format, and TunedSearcher driven without Ray."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from abl.errors import AblError
from abl.results.store import PartWriter
from abl.results.tuned import analyse_tuned
from abl.rundir import TRIALS
from abl.search.tuned import TunedASHA, TunedSearcher
from abl.space import count_trials, load_space
from abl.space.schema import ARM_KEY, PHASE_KEY, Dist, parse_space

BASE = """
name: t
trainable: forecast
fixed: {train.epochs: 1}
grid: {model.pe_type: [none, rope], model.is_causal: [true, false]}
"""
TUNE = "tune: {params: {train.lr: {loguniform: [1e-4, 1e-2]}}, trials: 3}\n"
LR = {"train.lr": Dist(kind="loguniform", args=(1e-4, 1e-2))}


def load(tmp_path: Path, text: str, *overrides: str):
    path = tmp_path / "space.yaml"
    path.write_text(text, encoding="utf-8")
    return load_space(str(path), list(overrides))


def test_count_is_arms_times_tuning_plus_confirmation(tmp_path):
    assert count_trials(load(tmp_path, BASE + TUNE + "confirm: 2")) == 4 * (3 + 2)
    when = "when:\n  - if: {model.pe_type: rope}\n    grid: {model.d_model: [8, 16]}\n"
    assert count_trials(load(tmp_path, BASE + TUNE + when)) == (2 + 4) * 3


def test_resolved_space_round_trips_with_its_tune_block(tmp_path):
    space = load(tmp_path, BASE + TUNE + "confirm: 2", "tune.algorithm=random")
    again = parse_space(__import__("yaml").safe_load(space.to_yaml()), source="x")
    assert again.tune == space.tune and again.confirm == 2 and space.tune.algorithm == "random"
    assert space.sweep_keys() == ["model.pe_type", "model.is_causal", "train.lr", "seed"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE + "confirm: 3", "confirm: re-runs each arm's tuned best, so it needs a tune: block"),
        (BASE + TUNE + "repeats: 3", "repeats must be 1 with tune:; got 3"),
        (BASE + TUNE + "search: {algorithm: tpe}", "search.algorithm must stay grid; got tpe"),
        (
            BASE + TUNE + "sample: {train.batch_size: {int: [8, 16]}}",
            "tune: takes its distributions in tune.params",
        ),
        (
            BASE + "tune: {params: {seed: {int: [0, 9]}}}",
            "seeds are set by a tuned ablation",
        ),
        (
            BASE + "tune: {params: {model.pe_type: {choice: [none, rope]}}}",
            "must not also be fixed or a grid axis; got 'model.pe_type'",
        ),
        (BASE + "tune: {params: {}}", "tune.params"),
        (BASE + "tune: {trials: 3}", "missing required key 'tune.params'"),
        (BASE + TUNE.replace("trials", "trails"), "did you mean 'tune.trials'"),
        (BASE + "tune: {params: {train.lr: {loguniform: [0, 1]}}}", "loguniform needs low > 0"),
        (BASE + TUNE + "confirm: -1", "confirm must be >= 0"),
        (
            BASE + "tune: {params: {train.lr: {loguniform: [1e-4, 1e-2]}}, algorithm: bo}",
            "tune.algorithm must be one of random, tpe; got 'bo'",
        ),
    ],
    ids=lambda v: v if len(v) < 30 else None,
)
def test_mistakes_give_one_line_naming_the_file_and_key(tmp_path, text, expected):
    with pytest.raises(AblError, match=expected) as info:
        load(tmp_path, text)
    assert "\n" not in str(info.value) and "space.yaml" in str(info.value)


def searcher(**kw) -> TunedSearcher:
    args = dict(
        arms=[{"arm": "a"}, {"arm": "b"}, {"arm": "c"}],
        params=LR,
        trials=4,
        confirm=3,
        algorithm="tpe",
        seed=1,
        metric="loss",
        mode="min",
    )
    return TunedSearcher(**{**args, **kw})


def finish(s: TunedSearcher, trial_id: str, value: float, steps: int = 3) -> None:
    for step in range(1, steps + 1):
        s.on_trial_result(trial_id, {"loss": value + 1 / step, "training_iteration": step})
    s.on_trial_complete(trial_id, {"loss": value, "training_iteration": steps})


def lr_loss(config: dict) -> float:
    """Arm a is best near 1e-3, b and c near 1e-2."""
    import math

    opt = {"a": -3.0, "b": -2.0, "c": -2.0}[config["arm"]]
    return (math.log10(config["train.lr"]) - opt) ** 2


def test_round_robin_then_confirmation_on_new_seeds():
    s = searcher()
    tuning = [s.suggest(f"t{i}") for i in range(12)]
    assert [c["tune.arm"] for c in tuning] == [0, 1, 2] * 4
    assert {c[PHASE_KEY] for c in tuning} == {"tune"} and {c["seed"] for c in tuning} == {0}
    assert s.suggest("wait") is None  # no arm has finished tuning yet
    for i, c in enumerate(tuning):
        if c[ARM_KEY] != 2:
            finish(s, f"t{i}", lr_loss(c))
    confirm = [s.suggest(f"c{i}") for i in range(6)]
    assert [c[ARM_KEY] for c in confirm] == [0, 0, 0, 1, 1, 1]  # arm 2 is still tuning
    assert s.suggest("wait") is None
    assert {c[PHASE_KEY] for c in confirm} == {"confirm"}
    assert [c["seed"] for c in confirm[:3]] == [1, 2, 3]  # never the tuning seed 0
    best0 = min((c for c in tuning if c[ARM_KEY] == 0), key=lr_loss)
    assert confirm[0]["train.lr"] == best0["train.lr"] == s.best(0).params["train.lr"]
    for i, c in enumerate(tuning):
        if c[ARM_KEY] == 2:
            finish(s, f"t{i}", lr_loss(c))
    assert [s.suggest(f"d{i}")[ARM_KEY] for i in range(3)] == [2, 2, 2]
    for i in range(6):
        finish(s, f"c{i}", 0.0)
    for i in range(3):
        finish(s, f"d{i}", 0.0)
    assert s.suggest("end") == "FINISHED"


def test_each_arm_has_its_own_study_and_sampler():
    s = searcher(trials=6, confirm=0)
    for i in range(18):
        c = s.suggest(f"t{i}")
        finish(s, f"t{i}", lr_loss(c))
    assert [len(study.trials) for study in s.studies] == [6, 6, 6]
    firsts = [study.trials[0].params["train.lr"] for study in s.studies]
    assert len(set(firsts)) == 3  # seed + arm index: no two arms draw the same points
    assert all(
        lr_loss({"arm": arm, "train.lr": t.params["train.lr"]}) == t.value
        for arm, study in zip("abc", s.studies, strict=True)
        for t in study.trials
    )


def test_mode_max_and_pruned_or_failed_trials():
    s = searcher(arms=[{"arm": "a"}], trials=3, confirm=1, mode="max", max_t=3)
    configs = [s.suggest(f"t{i}") for i in range(3)]
    finish(s, "t0", 5.0)
    finish(s, "t1", 9.0, steps=1)  # stopped at step 1 of 3: pruned, its value is not final
    s.on_trial_complete("t2", error=True)
    states = [t.state.name for t in s.studies[0].trials]
    assert states == ["COMPLETE", "PRUNED", "FAIL"]
    assert (
        s.best(0).params["train.lr"] == configs[0]["train.lr"]
        and s.suggest("c")["train.lr"] == configs[0]["train.lr"]
    )


def test_save_and_restore_continue_the_same_search(tmp_path):
    a, b = searcher(), searcher()
    for i in range(7):
        c = a.suggest(f"t{i}")
        finish(a, f"t{i}", lr_loss(c))
    running = a.suggest("running")  # in flight when the driver dies
    a.save(str(tmp_path / "searcher.pkl"))
    b.restore(str(tmp_path / "searcher.pkl"))
    finish(a, "running", lr_loss(running))
    finish(b, "running", lr_loss(running))
    assert [b.suggest(f"n{i}") for i in range(5)] == [a.suggest(f"n{i}") for i in range(5)]
    assert [len(s.trials) for s in b.studies] == [len(s.trials) for s in a.studies]


def test_a_resume_ends_the_trials_that_ended_after_the_snapshot_from_their_rows(tmp_path):
    """Tune's snapshot reaches the run directory a step or more after the Parquet store has a
    trial's end: resumed, that trial is not run again, and its arm must not wait for it."""
    run_dir = tmp_path / "run"
    kw = dict(arms=[{"arm": "a"}, {"arm": "b"}], trials=2, confirm=1, run_dir=run_dir)
    a = searcher(**kw)
    configs = {f"t{i}": a.suggest(f"t{i}") for i in range(4)}
    for i in (0, 1, 2):
        finish(a, f"t{i}", lr_loss(configs[f"t{i}"]))
    a.save(str(tmp_path / "searcher.pkl"))  # t3 still runs in the snapshot
    finish(a, "t3", lr_loss(configs["t3"]))  # ...and ends before the driver dies
    rows = [
        {"trial_id": t, "status": "completed", "steps": 3, "loss": lr_loss(c), **c}
        for t, c in configs.items()
    ]
    PartWriter(run_dir / TRIALS).append([{**rows[3], "status": "running", "steps": 1}, *rows])

    b = searcher(**kw)
    b.restore(str(tmp_path / "searcher.pkl"))
    assert "t3" not in b.live and b.tuned(1)
    assert [(t.state, t.value) for t in b.studies[1].trials] == [
        (t.state, t.value) for t in a.studies[1].trials
    ]
    confirm = [b.suggest(f"c{i}") for i in range(2)]
    assert [c[PHASE_KEY] for c in confirm] == ["confirm", "confirm"]
    assert [c["train.lr"] for c in confirm] == [
        a.best(0).params["train.lr"],
        a.best(1).params["train.lr"],
    ]
    for i in range(2):
        finish(b, f"c{i}", 0.0)
    assert b.suggest("end") == "FINISHED"


def test_confirmed_asha_never_prunes_confirmation_trials():
    asha = TunedASHA(
        time_attr="training_iteration", metric="loss", mode="min", max_t=4, grace_period=1
    )
    trials = [
        SimpleNamespace(trial_id=f"t{i}", config={PHASE_KEY: phase})
        for i, phase in enumerate(["tune", "tune", "confirm", "tune"])
    ]
    for t in trials:
        asha.on_trial_add(None, t)
    decide = [
        asha.on_trial_result(None, t, {"training_iteration": 1, "loss": loss})
        for t, loss in zip(trials, [0.2, 0.1, 9.0, 9.0], strict=True)
    ]
    assert decide == ["CONTINUE", "CONTINUE", "CONTINUE", "STOP"]


def frame(rows: list[tuple]) -> pd.DataFrame:
    cols = ["trial_id", "status", "model.pe_type", "train.lr", "seed", PHASE_KEY, ARM_KEY, "loss"]
    return pd.DataFrame([(f"t{i}", "completed", *r) for i, r in enumerate(rows)], columns=cols)


def test_report_ties_arms_that_are_not_significantly_apart(tmp_path):
    space = parse_space(
        {
            "name": "t",
            "trainable": "x:f",
            "metric": "loss",
            "grid": {"model.pe_type": ["none", "rope", "sinpe"]},
            "tune": {"params": {"train.lr": {"loguniform": [1e-4, 1e-2]}}, "trials": 2},
            "confirm": 3,
        },
        source="t.yaml",
    )
    rows = []
    for arm, (pe, lr, mean) in enumerate(
        [("none", 1e-3, 1.0), ("rope", 1.05e-4, 1.01), ("sinpe", 1e-3, 2.0)]
    ):
        rows += [(pe, lr, 0, "tune", arm, mean), (pe, 5e-3, 0, "tune", arm, mean + 1)]
        rows += [(pe, lr, s, "confirm", arm, mean + 0.05 * (s - 2)) for s in (1, 2, 3)]
    t = analyse_tuned(frame(rows), space, "loss", "min")
    assert [(a.values["model.pe_type"], a.rank, a.tied) for a in t.arms] == [
        ("none", 1, True),
        ("rope", 1, True),
        ("sinpe", 3, False),
    ]
    assert (
        t.arms[1].edges
        and "low edge" in t.arms[1].edges[0]
        and "widen the range" in t.arms[1].edges[0]
    )
    assert not t.arms[0].edges
    assert t.shared_value == pytest.approx(1e-3) and t.changed is False


def test_dry_run_lists_the_arms_and_writes_nothing(tmp_path):
    from click.testing import CliRunner

    from abl.cli import main

    path = tmp_path / "space.yaml"
    path.write_text(BASE + TUNE + "confirm: 2", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["--root", str(tmp_path / "runs"), "search", str(path), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "20 trials" in result.output and "per arm 3 tpe trials over train.lr" in result.output
    assert "4 arms" in result.output and not (tmp_path / "runs").exists()
    bad = CliRunner().invoke(main, ["search", str(path), "repeats=2", "--dry-run"])
    assert bad.exit_code == 2 and "repeats must be 1 with tune:" in bad.output


def test_report_without_confirmation_ranks_best_tuning_trials_and_keeps_failed_arms():
    space = parse_space(
        {
            "name": "t",
            "trainable": "x:f",
            "metric": "loss",
            "mode": "max",
            "grid": {"model.pe_type": ["none", "rope", "sinpe"]},
            "tune": {"params": {"train.lr": {"loguniform": [1e-4, 1e-1]}}, "trials": 2},
        },
        source="t.yaml",
    )
    rows = [
        ("none", 1e-3, 0, "tune", 0, 0.9),
        ("none", 3e-2, 0, "tune", 0, 0.1),
        ("rope", 2e-3, 0, "tune", 1, 0.2),
        ("rope", 1e-2, 0, "tune", 1, 0.5),
        ("sinpe", 1e-2, 0, "tune", 2, None),
    ]
    trials = frame(rows)
    trials.loc[4, "status"] = "errored"
    t = analyse_tuned(trials, space, "loss", "max")
    assert not t.confirmed and not t.pairs
    assert [(a.name, a.rank, a.best_value) for a in t.arms] == [
        ("pe_type=none", 1, 0.9),
        ("pe_type=rope", 2, 0.5),
        ("pe_type=sinpe", 3, None),
    ]
    # Optima 1e-3 and 1e-2 disagree: the shared lr is their (log) median.
    assert t.shared_value == pytest.approx(10**-2.5) and "median" in t.shared_why
    assert [a.name for a in t.untuned] == ["pe_type=none", "pe_type=rope"] and t.changed is False
    assert "did not change" in t.conclusion()
    assert "widen" not in " ".join(e for a in t.arms for e in a.edges)


def test_edges_say_widen_except_at_a_natural_zero():
    from abl.results.tuned import edge_notes

    params = {
        "train.lr": Dist(kind="loguniform", args=(1e-4, 1e-1)),
        "train.warmup_steps": Dist(kind="int", args=(0, 500)),
    }
    assert edge_notes({"train.lr": 1e-3, "train.warmup_steps": 250}, params) == []
    high, zero = edge_notes({"train.lr": 0.08, "train.warmup_steps": 10}, params)
    assert "high edge" in high and "widen the range" in high
    assert "near 0, its lower bound" in zero and "widen" not in zero


def test_tuned_asha_compares_a_trial_only_with_its_own_arm():
    asha = TunedASHA(
        time_attr="training_iteration", metric="loss", mode="min", max_t=4, grace_period=1
    )
    strong = [SimpleNamespace(trial_id=f"s{i}", config={ARM_KEY: 0}) for i in range(3)]
    weak = [SimpleNamespace(trial_id=f"w{i}", config={ARM_KEY: 1}) for i in range(2)]
    for t in strong + weak:
        asha.on_trial_add(None, t)
    step = {"training_iteration": 1}
    assert [asha.on_trial_result(None, t, {**step, "loss": 0.1}) for t in strong[:2]] == [
        "CONTINUE"
    ] * 2
    assert asha.on_trial_result(None, strong[2], {**step, "loss": 5.0}) == "STOP"
    # Far worse than arm 0's rung, but the first of its own arm: it continues.
    assert asha.on_trial_result(None, weak[0], {**step, "loss": 3.0}) == "CONTINUE"
    assert asha.on_trial_result(None, weak[1], {**step, "loss": 2.0}) == "CONTINUE"
