"""A function trainable that does nothing but report: what a trial costs when training is free."""

from __future__ import annotations

from typing import Any

REPORTS = 10  # reports per trial


def trainable(config: dict[str, Any]) -> None:
    """Report ``score`` ``REPORTS`` times and return (a Ray Tune function trainable)."""
    from ray import tune

    for i in range(REPORTS):
        tune.report({"score": float(i)})
