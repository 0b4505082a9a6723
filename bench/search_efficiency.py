"""Figure ``search_efficiency``: compute a tuned ablation needs to find every arm's best.

    python -m bench --only search_efficiency

A deterministic synthetic landscape with the structure of our ablations: 6 arms (qk norm x
attention activation) whose loss depends on the learning rate (log scale) and warmup around an
optimum of the arm's own, and learning curves over 9 epochs in which a high learning rate
looks good early (so early stopping can mislead, as it does on real runs). Four ways to tune
``train.lr`` and ``train.warmup_steps`` within every arm:

- grid: 8 learning rates x 5 warmups per arm, all run to the end (240 trials, 2160 epochs);
- random, TPE: abl's :class:`abl.search.tuned.TunedSearcher` (one Optuna study per arm);
- TPE + ASHA: the same, with abl's :class:`abl.search.tuned.TunedASHA` (Ray's
  AsyncHyperBand, grace 1, reduction factor 3, with rungs per arm) stopping trials early.

The searcher and the scheduler are abl's and Ray's own objects, driven in-process on 4
simulated workers that advance one epoch per step (Ray Tune itself would spend its ~0.1 s of
overhead per trial on thousands of trials; the objective costs nothing). Compute is
trial-epochs spent until the best value so far is within 1% of the full grid's best (the
target), and, stricter, until *every* arm's best is within 1% of that arm's grid best (what an
ablation that compares arms at their best needs); median over 5 search seeds, as a share of
the full grid's compute. A search that has not got there when it has spent the grid's
compute stops and counts as the grid's compute (the notes say how often). For information,
the worst arm's gap to its grid best when the search stopped (median over seeds): what an
ablation that stopped there would misjudge.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from bench._figure import Figure, at_most

REPEATS = 1  # deterministic: repeats give the same numbers
EPOCHS = 9  # a full trial; ASHA's rungs are at 1, 3 and 9 epochs
WORKERS = 4  # trials running at once
SEEDS, QUICK_SEEDS = 5, 2
WITHIN = 0.01  # "found it": within 1% of the arm's grid best
LR_RANGE, WARMUP_RANGE = (1e-4, 3e-2), (0, 500)
GRID_LR, GRID_WARMUP = 8, 5

# Per arm: loss at the optimum, log10 of the best learning rate, best warmup.
ARMS = [
    (1.40, -2.5, 100),
    (1.42, -2.0, 300),
    (1.45, -3.0, 50),
    (1.43, -2.2, 400),
    (1.50, -3.3, 200),
    (1.47, -2.7, 250),
]
QUICK_ARMS = 3


def loss(arm: int, lr: float, warmup: int, epoch: int) -> float:
    """Validation loss of ``arm`` after ``epoch`` epochs: a decay from 4.2 to the arm's final loss.

    The converged loss is quadratic in log10(lr) and in warmup around the arm's optimum (the
    table above); a higher learning rate and a shorter warmup converge faster, so early epochs
    favour them, and after 9 epochs the best setting sits a little above the table's.
    """
    floor, log_lr, best_warmup = ARMS[arm]
    final = floor + 0.3 * (math.log10(lr) - log_lr) ** 2 + 0.2 * ((warmup - best_warmup) / 500) ** 2
    speed = 0.25 + 0.35 * min(1.0, max(0.0, (math.log10(lr) + 4) / 2.5)) - 0.1 * warmup / 500
    return final + (4.2 - final) * math.exp(-speed * epoch)


def grid_points() -> list[tuple[float, int]]:
    """The grid of every arm: log-spaced learning rates x evenly spaced warmups."""
    lrs = np.geomspace(*LR_RANGE, GRID_LR)
    warmups = np.linspace(*WARMUP_RANGE, GRID_WARMUP).round().astype(int)
    return [(float(lr), int(w)) for lr in lrs for w in warmups]


def grid_best(arms: int) -> list[float]:
    """Each arm's best final loss on the grid."""
    return [min(loss(a, lr, w, EPOCHS) for lr, w in grid_points()) for a in range(arms)]


@dataclass
class Outcome:
    """One search: trial-epochs spent until the sweep's best, then every arm's, got within 1%."""

    overall: int | None  # the best of all arms within 1% of the grid's best (None: never)
    every_arm: int | None  # every arm within 1% of its own grid best (None: never)
    spent: int  # trial-epochs spent in all
    gap: float  # at the end, the worst arm's best value above its grid best (0.01: 1%)


def search(arms: int, algorithm: str, seed: int, *, asha: bool) -> Outcome:
    """Drive abl's TunedSearcher (and TunedASHA) on ``WORKERS`` simulated workers."""
    from ray.tune.schedulers import TrialScheduler

    from abl.search.tuned import TunedASHA, TunedSearcher
    from abl.space.schema import Dist

    params = {
        "train.lr": Dist(kind="loguniform", args=LR_RANGE),
        "train.warmup_steps": Dist(kind="int", args=WARMUP_RANGE),
    }
    budget = arms * len(grid_points()) * EPOCHS  # the grid's compute, in trial-epochs
    searcher = TunedSearcher(
        arms=[{"arm": a} for a in range(arms)],
        params=params,
        trials=len(grid_points()) * EPOCHS,  # never the limit: compute is
        algorithm=algorithm,
        seed=seed,
        metric="loss",
        mode="min",
        max_t=EPOCHS if asha else None,
    )
    scheduler = None
    if asha:
        scheduler = TunedASHA(
            time_attr="training_iteration",
            metric="loss",
            mode="min",
            max_t=EPOCHS,
            grace_period=1,
            reduction_factor=3,
        )
    target = [b * (1 + WITHIN) for b in grid_best(arms)]
    overall_target = min(target)
    overall: int | None = None
    best = [math.inf] * arms
    running: dict[str, Any] = {}
    spent, count = 0, 0
    while spent < budget:
        while len(running) < WORKERS:
            config = searcher.suggest(f"t{count}")
            if not isinstance(config, dict):
                break
            trial = SimpleNamespace(trial_id=f"t{count}", config=config, epoch=0)
            running[trial.trial_id] = trial
            count += 1
            if scheduler is not None:
                scheduler.on_trial_add(None, trial)
        if not running:
            break
        for trial in list(running.values()):
            trial.epoch += 1
            spent += 1
            c = trial.config
            value = loss(c["arm"], c["train.lr"], c["train.warmup_steps"], trial.epoch)
            best[c["arm"]] = min(best[c["arm"]], value)
            if overall is None and value <= overall_target:
                overall = spent
            if all(b <= t for b, t in zip(best, target, strict=True)):
                return Outcome(overall, spent, spent, _gap(best, arms))
            result = {"loss": value, "training_iteration": trial.epoch}
            stop = trial.epoch >= EPOCHS
            if scheduler is not None and not stop:
                stop = scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP
            if stop:
                searcher.on_trial_complete(trial.trial_id, result)
                if scheduler is not None:
                    scheduler.on_trial_complete(None, trial, result)
                del running[trial.trial_id]
            else:
                searcher.on_trial_result(trial.trial_id, result)
    return Outcome(overall, None, spent, _gap(best, arms))


def _gap(best: list[float], arms: int) -> float:
    return max(b / g - 1 for b, g in zip(best, grid_best(arms), strict=True))


METHODS = {  # name -> (TunedSearcher algorithm, ASHA)
    "random": ("random", False),
    "TPE": ("tpe", False),
    "TPE + ASHA": ("tpe", True),
}


def run(quick: bool) -> Figure:
    """Median compute of each method to get every arm within 1% of its grid best."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    arms = QUICK_ARMS if quick else len(ARMS)
    seeds = range(QUICK_SEEDS if quick else SEEDS)
    grid = arms * len(grid_points()) * EPOCHS
    fig = Figure(
        "search_efficiency",
        f"trial-epochs to get all {arms} arms within 1% of their grid best: grid, random, TPE, TPE + ASHA",
    )
    fig.add("grid: trial-epochs (every arm, every point, to the end)", grid, "epochs")
    for name, (algorithm, asha) in METHODS.items():
        outcomes = [search(arms, algorithm, seed, asha=asha) for seed in seeds]
        overall = statistics.median(_spent(o.overall, o) for o in outcomes)
        every = statistics.median(_spent(o.every_arm, o) for o in outcomes)
        target = at_most(0.30) if name == "TPE + ASHA" else None
        fig.add(f"{name} / grid compute, best arm within 1%", overall / grid, "x", target)
        fig.add(f"{name} / grid compute, every arm within 1%", every / grid, "x")
        fig.add(f"{name}: median trial-epochs, every arm", every, "epochs")
        gap = statistics.median(o.gap for o in outcomes)
        fig.add(f"{name}: worst arm above its grid best at the end", 100 * gap, "%")
        misses = sum(o.every_arm is None for o in outcomes)
        if misses:
            fig.notes.append(
                f"{name}: {misses} of {len(outcomes)} seeds did not get every arm there "
                "within the grid's compute (counted as the grid's)"
            )
    fig.notes.append(
        f"{arms} arms, {len(grid_points())} grid points per arm, {EPOCHS} epochs, "
        f"{WORKERS} workers, median over {len(seeds)} search seeds"
    )
    return fig


def _spent(epochs: int | None, outcome: Outcome) -> int:
    return outcome.spent if epochs is None else epochs
