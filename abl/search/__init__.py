"""The engine that runs a space (:mod:`abl.space`) on Ray Tune, its sinks, and nightly sweeps.

Importing this package does not import ray, torch or mlflow; the engine loads them when it runs.
"""

from abl.search.engine import Sweep, SweepOptions, build_tuner
from abl.search.nightly import NightlyConfig, load_nightly, plan_nightly, run_nightly
from abl.search.sweep import run_sweep

__all__ = [
    "NightlyConfig",
    "Sweep",
    "SweepOptions",
    "build_tuner",
    "load_nightly",
    "plan_nightly",
    "run_nightly",
    "run_sweep",
]
