"""The search-efficiency figure's landscape and its quick run (in-process, about a second)."""

from __future__ import annotations

import math

from bench import search_efficiency as se


def test_landscape_converges_to_the_known_optimum():
    for arm, (floor, log_lr, warmup) in enumerate(se.ARMS):
        assert math.isclose(se.loss(arm, 10**log_lr, warmup, 10_000), floor)
        assert se.loss(arm, 10 ** (log_lr + 0.5), warmup, 10_000) > floor
        curve = [se.loss(arm, 10**log_lr, warmup, e) for e in range(1, se.EPOCHS + 1)]
        assert curve == sorted(curve, reverse=True)  # learning curves fall epoch by epoch


def test_quick_figure_measures_every_method():
    fig = se.run(quick=True)
    names = [m.name for m in fig.measures]
    for method in se.METHODS:
        assert f"{method} / grid compute, best arm within 1%" in names
    assert all(m.value > 0 for m in fig.measures)
