"""Adaptive seeds read back from a run's trials: the report states what the sweep decided.

The searcher (abl.search.adaptive) is driven in-process on planted results; its trials become
a trials table as the Parquet sink writes it, and :func:`seed_rounds` must replay the same
assessment: the same seeds per configuration, the same decisions, the same reasons.
"""

from __future__ import annotations

import random

import pandas as pd
import yaml
from ray.tune.search import Searcher

from abl.results.seeds import seed_rounds
from abl.search.adaptive import adaptive_searcher
from abl.space.schema import parse_space

MEAN = {"none": 0.0, "rope": 1.0, "sinpe": 1.02, "randn": 3.0}

SPACE = """
name: s
trainable: forecast
metric: val/loss
grid: {model.pe_type: [none, rope, sinpe, randn], model.is_causal: [true, false]}
repeats: {min: 2, max: 6, margin: 0.3}
"""


def value(config: dict) -> float:
    pe, causal, seed = config["model.pe_type"], config["model.is_causal"], config["seed"]
    noise = random.Random(f"{pe}-{causal}-{seed}").gauss(0, 0.05)
    return MEAN[pe] + (0.5 if causal else 0.0) + noise


def test_the_report_replays_what_the_searcher_decided() -> None:
    space = parse_space(yaml.safe_load(SPACE), source="s.yaml")
    variants = [
        {"model.pe_type": pe, "model.is_causal": causal, "seed": s}
        for pe in MEAN
        for causal in (True, False)
        for s in range(6)
    ]
    searcher = adaptive_searcher(space, variants, max_t=None, run_dir=None)
    rows, n = [], 0
    while True:
        config = searcher.suggest(f"t{n}")
        if config is None or config == Searcher.FINISHED:
            break
        loss = value(config)
        searcher.on_trial_complete(f"t{n}", {"val/loss": loss, "training_iteration": 1})
        rows.append({"trial_id": f"t{n}", "status": "completed", "val/loss": loss, **config})
        n += 1
    assert config == Searcher.FINISHED
    live = searcher.rounds.assessment
    assert len(rows) < len(variants)  # the point: fewer trials than fixed max seeds

    replay = seed_rounds(pd.DataFrame(rows).sample(frac=1, random_state=0), space)
    assert replay is not None and replay.trials == len(rows) and replay.most == len(variants)
    by_label = {
        tuple(sorted(s.items())): st
        for s, st in zip(replay.swept, replay.assessment.configs, strict=True)
    }
    for swept, st in zip(searcher.rounds.swept, live.configs, strict=True):
        again = by_label[tuple(sorted(swept.items()))]
        assert (again.seeds, again.why) == (st.seeds, st.why)
    decided = {(c.axis, c.a, c.b, c.verdict) for c in live.comparisons}
    assert {(c.axis, c.a, c.b, c.verdict) for c in replay.assessment.comparisons} == decided
    assert any(c.verdict != "open" for c in replay.comparisons)
    assert replay.to_json()["decided"] == sum(c.verdict != "open" for c in replay.comparisons)
