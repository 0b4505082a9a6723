"""Adaptive seeds (abl.results.sequential): decisions, stopping, replay, validity under the null."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import special

from abl.errors import AblError
from abl.results._boundary import critical, t_tail, tail
from abl.results._pooled import interaction
from abl.results.sequential import Assessment, SeedPlan, assess, procedure

PLAN = SeedPlan(2, 10)
PAIR = [{"arm": "x"}, {"arm": "y"}]
GRID = [{"pe": pe, "norm": n} for pe in ("rope", "sinpe") for n in ("none", "rms")]
GRID6 = [{"qk": q, "act": a} for q in ("none", "rms", "fro") for a in ("softmax", "sigmoid")]


def drive(
    configs: list[dict], y: np.ndarray, plan: SeedPlan, mode: str = "min", *, pruned=()
) -> tuple[Assessment, list[dict[int, float]], list[Assessment]]:
    """Run rounds as the searcher does; every assessment seen along the way."""
    values = [{s: float(y[i, s]) for s in range(plan.min)} for i in range(len(configs))]
    seen = []
    while True:
        now = assess(configs, values, plan, mode, pruned=pruned)
        seen.append(now)
        assert now.done or now.need <= plan.max  # never asks for a seed beyond max
        if now.done:
            return now, values, seen
        for c in now.configs:
            for s in range(len(values[c.index]), now.need if c.open else 0):
                values[c.index][s] = float(y[c.index, s])


def noise(k: int, seed: int, sd: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sd, (k, 10))


def test_boundary_matches_jennison_turnbull_obrien_fleming_constants() -> None:
    # Table 2.3 of Jennison & Turnbull (2000), alpha = 0.05 two-sided, K equally spaced looks
    for looks, c in [(1, 1.960), (2, 1.977), (3, 2.004), (4, 2.024), (5, 2.040)]:
        assert critical(tuple((i + 1) / looks for i in range(looks)), 0.05) == pytest.approx(
            c, abs=2e-3
        )
    one = tail((1.0,))
    assert float(one(np.array(3.0))) == pytest.approx(math.erfc(3 / math.sqrt(2)), rel=1e-3)


def test_the_t_based_tail_is_calibrated_where_brownian_motion_is_not() -> None:
    # fresh null draws of the statistic assess computes for one pair, 2 to 5 seeds
    x = np.random.default_rng(99).normal(size=(100_000, 5))
    best = np.zeros(len(x))
    for n in range(2, 6):
        t = x[:, :n].mean(1) / (x[:, :n].std(1, ddof=1) / math.sqrt(n))
        z = -special.ndtri(special.stdtr(n - 1, -np.abs(t)))
        best = np.maximum(best, z * math.sqrt(n / 5))
    rate = float(np.mean(t_tail(2, 5, 1)(best) < 0.05))
    assert rate == pytest.approx(0.05, abs=0.003)
    brownian = float(np.mean(tail((0.4, 0.6, 0.8, 1.0))(best) < 0.05))
    assert brownian > 0.055  # why the simulated tail is needed


def test_the_pooled_statistic_s_simulated_tail_is_calibrated() -> None:
    # fresh null draws of 6 configurations x 10 seeds, with config means and seed effects
    # (the two-way layout's nuisances); the pooled t of a pair (2 members, 4 others) and of an
    # axis pair over 2 cells (4 members, 2 others), computed from the data at every look
    rng = np.random.default_rng(98)
    draws = 50_000
    mu = rng.normal(0, 3, (draws, 6, 1))
    mu[:, 1], mu[:, 3] = mu[:, 0], mu[:, 2]  # the nulls: 0 = 1, and 0 + 2 = 1 + 3
    y = mu + rng.normal(0, 3, (draws, 1, 10)) + rng.normal(size=(draws, 6, 10))
    first = interaction(y[:, :, :2])
    for a, b, cells in [([0], [1], 1), ([0, 2], [1, 3], 2)]:
        members = y[:, a + b]
        m, others = 2 * cells, 6 - 2 * cells
        best = np.zeros(draws)
        for n in range(2, 11):
            rss = first - interaction(members[:, :, :2]) + interaction(members[:, :, :n])
            df = others + (m - 1) * (n - 1)
            d = (y[:, a, :n] - y[:, b, :n]).mean(axis=(1, 2))
            t = d / np.sqrt(2 * rss / df / (cells * n))
            z = -special.ndtri(special.stdtr(df, -np.abs(t)))
            best = np.maximum(best, z * math.sqrt(n / 10))
        rate = float(np.mean(t_tail(2, 10, cells, others)(best) < 0.05))
        assert rate == pytest.approx(0.05, abs=0.003)


def test_the_pooled_variance_decides_a_large_difference_at_3_seeds() -> None:
    # 6 configurations, one 60 SDs worse: at 3 seeds the pooled residual has 6 df (2 for
    # the pair alone), enough for the boundary of the second of 9 looks
    for seed in range(5):
        y = np.random.default_rng(seed).normal(size=(6, 10))
        y[5] += 60.0
        for pooled, seeds in [(True, {3}), (False, {4, 5})]:
            last, _, _ = drive(GRID6, y, SeedPlan(2, 10, pooled=pooled))
            (c,) = [c for c in last.comparisons if c.axis is None and 5 in c.members]
            assert c.verdict == "a" and PLAN.min + c.look in seeds


def test_a_large_difference_decides_early_and_stops_the_worse() -> None:
    y = noise(2, 0, 0.01) + np.array([[0.0], [1.0]])
    last, values, _ = drive(PAIR, y, PLAN)
    c, axis = last.comparisons  # against the leader, and the one axis's pair
    assert (axis.axis, axis.verdict, axis.look) == ("arm", "a", c.look)
    assert c.p_holm == pytest.approx(c.p) == axis.p_holm  # one hypothesis, counted once
    assert last.leader == 0 and c.verdict == "a" and c.look is not None
    assert c.a == "arm=x" and c.diff < 0
    assert len(values[1]) < PLAN.max and last.done
    worse = last.configs[1]
    assert not worse.open and worse.why.startswith("worse than the leader (arm=x) at")


def test_mode_max_prefers_the_larger() -> None:
    y = noise(2, 0, 0.01) + np.array([[0.0], [1.0]])
    last, _, _ = drive(PAIR, y, PLAN, "max")
    assert last.leader == 1 and last.comparisons[0].verdict == "a"


def test_no_difference_without_margin_or_futility_runs_to_max_and_stays_open() -> None:
    plan = SeedPlan(2, 10, futility=None)
    last, values, seen = drive(PAIR, noise(2, 1), plan)
    assert [len(v) for v in values] == [10, 10]
    assert last.looks == plan.looks and last.done
    assert last.comparisons[0].verdict == "open" and last.comparisons[0].look is None
    assert {c.why for c in last.configs} == {"leader", "reached max (10 seeds)"}
    assert [a.looks for a in seen] == list(range(1, PLAN.looks + 1))


def test_a_margin_makes_a_true_tie_equivalent() -> None:
    plan = SeedPlan(2, 10, margin=0.5)
    last, values, _ = drive(PAIR, noise(2, 2, 0.01), plan)
    c = last.comparisons[0]
    assert c.verdict == "equivalent" and c.look is not None
    assert sum(map(len, values)) < 20
    assert last.configs[1].why.startswith("equivalent to the leader")


def test_replay_of_a_prefix_equals_what_each_round_saw() -> None:
    y = noise(4, 3, 0.3) + np.array([[0.0], [0.5], [1.0], [3.0]])
    _, values, seen = drive(GRID, y, PLAN)
    for now in seen[:-1]:
        # the data each config had when `now` was computed: what it had at that look
        counts = {c.index: c.seeds for c in now.configs}
        prefix = [{s: v for s, v in vals.items() if s < counts[i]} for i, vals in enumerate(values)]
        assert assess(GRID, prefix, PLAN, "min") == now


def test_decided_stays_decided_as_seeds_are_added() -> None:
    y = noise(4, 4, 0.3) + np.array([[0.0], [0.4], [0.8], [1.6]])
    _, _, seen = drive(GRID, y, SeedPlan(2, 10))
    # more seeds for everyone, whatever the searcher wanted: decisions must not move
    full = [{s: float(v) for s, v in enumerate(row)} for row in y]
    late = assess(GRID, full, PLAN, "min")
    checked = 0
    for now in seen:
        for c in now.comparisons:
            if c.verdict != "open":
                key = (c.axis, c.a, c.b, c.members)
                same = [d for d in late.comparisons if (d.axis, d.a, d.b, d.members) == key]
                if c.axis is not None or late.leader == now.leader:
                    assert [(d.verdict, d.look) for d in same] == [(c.verdict, c.look)]
                    checked += 1
    assert checked >= 5  # decisions were made along the way, and kept
    ps = [[c.p for c in a.comparisons if c.axis is not None] for a in seen]
    assert all(b <= a + 1e-12 for x, z in itertools.pairwise(ps) for a, b in zip(x, z, strict=True))


@pytest.mark.parametrize("per_cell", [False, True])
def test_axis_comparisons_match_cells_and_pair_by_seed(per_cell: bool) -> None:
    # pe is worth 1.0 in both cells; a big offset per seed index cancels when paired. Shared by
    # every configuration, it is the two-way layout's seed effect, which the pooled residual
    # removes; one per norm cell (a seed effect that norm changes) is outside that model: the
    # residual counts it as noise (nothing decided), and each test's own pairs still cancel it
    rng = np.random.default_rng(5)
    offset = rng.normal(0, 5.0, (2, 10))  # per norm cell and seed index
    y = np.stack(
        [
            (1.0 if c["pe"] == "sinpe" else 0.0)
            + offset[("none", "rms").index(c["norm"]) if per_cell else 0]
            for c in GRID
        ]
    ) + rng.normal(0, 0.05, (4, 10))
    full = [{s: float(v) for s, v in enumerate(row)} for row in y]
    if per_cell:
        pooled = assess(GRID, full, PLAN, "min")
        assert all(c.verdict not in ("a", "b") for c in pooled.comparisons)
    now = assess(GRID, full, SeedPlan(2, 10, pooled=not per_cell), "min")
    (pe,) = [c for c in now.comparisons if c.axis == "pe"]
    assert (pe.a, pe.b, pe.verdict) == ("rope", "sinpe", "a")
    assert pe.n == 2 * (PLAN.min + pe.look)  # 2 cells x the seeds at its deciding look
    assert pe.diff == pytest.approx(-1.0, abs=0.05) and pe.members == frozenset(range(4))
    (norm,) = [c for c in now.comparisons if c.axis == "norm"]
    assert norm.members == frozenset(range(4)) and norm.verdict == "futile"
    assert norm.n == 2 * (PLAN.min + norm.look) and (norm.power or 1.0) < PLAN.futility


def test_a_null_comparison_stops_for_futility_well_before_max() -> None:
    verdicts, seeds = [], []
    for seed in range(40):
        last, values, seen = drive(PAIR, noise(2, 900 + seed), PLAN)
        c = last.comparisons[0]
        verdicts.append(c.verdict)
        seeds.append(len(values[1]))
        if c.verdict == "futile":
            assert c.look is not None and (c.power or 1.0) < PLAN.futility
            other = last.configs[1 - last.leader]
            assert last.done and not other.open
            why = other.why
            assert why.startswith("not distinguishable from the leader (arm=")
            assert f"stopped at {PLAN.min + c.look} seeds" in why and "conditional power" in why
            # stays futile at every later look
            assert all(a.comparisons[0].verdict == "futile" for a in seen if a.looks > c.look)
    assert verdicts.count("futile") >= 34  # the rest: false decisions (<= alpha) and open
    assert np.mean(seeds) <= 5.0  # of 10


def test_a_real_large_difference_is_not_stopped_for_futility() -> None:
    # 3 seed SDs apart: 10 seeds decide it; futility must not stop it on the way
    for seed in range(60):
        y = noise(2, 700 + seed) + np.array([[0.0], [3.0]])
        last, _, _ = drive(PAIR, y, PLAN)
        assert last.comparisons[0].verdict == "a"


def test_pruned_configs_take_no_seeds_and_are_not_grounds() -> None:
    y = noise(4, 6, 0.3)
    last, values, _ = drive(GRID, y, PLAN, pruned={3})
    assert len(values[3]) == 2 and last.configs[3].why == "pruned" and not last.configs[3].open
    assert last.leader != 3
    for c in last.comparisons:
        if c.axis is not None:
            assert 3 not in c.members  # its cell is out of the axis pairs
    everything = assess(GRID, [{} for _ in GRID], PLAN, "min", pruned=range(4))
    assert everything.done and everything.leader is None


def test_before_min_seeds_every_config_is_open() -> None:
    now = assess(PAIR, [{0: 1.0}, {0: 2.0, 1: 2.5}], PLAN, "min")
    assert now.looks == 0 and not now.done and now.need == 2
    assert [c.open for c in now.configs] == [True, False]


def test_false_decisions_with_no_difference_stay_within_alpha_with_or_without_futility() -> None:
    # 300 null sweeps of a 2x2 grid (6 config pairs + 2 axis pairs in the family), the same
    # draws with futility (the default) and without: non-binding, it cannot add false ones
    sweeps, false, without = 300, 0, 0
    for seed in range(sweeps):
        y = noise(4, 100 + seed)
        last, _, _ = drive(GRID, y, PLAN)
        false += any(c.verdict in ("a", "b") for c in last.comparisons)
        last, _, _ = drive(GRID, y, SeedPlan(2, 10, futility=None))
        without += any(c.verdict in ("a", "b") for c in last.comparisons)
    bound = 0.05 + 2.33 * math.sqrt(0.05 * 0.95 / sweeps)  # one-sided 99% binomial margin
    assert false / sweeps <= bound and without / sweeps <= bound
    assert false <= without + 3  # the same draws: futility adds none (beyond a leader's change)


def test_false_ties_at_the_margin_stay_within_alpha() -> None:
    # two configurations exactly one margin apart: "equivalent" is false; with one hypothesis
    # the repeated interval has level 1 - alpha, so each side errs with at most alpha / 2
    plan, sweeps, false = SeedPlan(2, 10, margin=3.0), 200, 0
    for seed in range(sweeps):
        y = noise(2, 500 + seed) + np.array([[0.0], [3.0]])
        last, _, _ = drive(PAIR, y, plan)
        false += last.comparisons[0].verdict == "equivalent"
    assert false / sweeps <= 0.025 + 2.33 * math.sqrt(0.025 * 0.975 / sweeps)


def test_plan_rules_and_procedure() -> None:
    assert SeedPlan(2, 10).looks == 9 and SeedPlan(3, 3).fractions == (1.0,)
    for bad in [
        dict(min=1, max=5),
        dict(min=4, max=3),
        dict(min=2, max=5, alpha=0),
        dict(min=2, max=5, margin=0),
        dict(min=2, max=5, futility=1.0),
        dict(min=2, max=5, futility=-0.1),
    ]:
        with pytest.raises(AblError):
            SeedPlan(**bad)
    with pytest.raises(AblError, match="mode"):
        assess(PAIR, [{}, {}], PLAN, "best")
    text = procedure(SeedPlan(2, 10, margin=0.01))
    assert "O'Brien-Fleming" in text and "Holm" in text and "9 looks" in text and "0.01" in text
    assert "futility" in text and "conditional power" in text and f"{PLAN.futility:g}" in text
    assert "futility" not in procedure(SeedPlan(2, 10, futility=None))
