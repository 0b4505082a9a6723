"""Spaces (format, overrides, validation) and the engine that runs them on Ray Tune.

Importing this package does not import ray, torch or mlflow; the engine loads them when it runs.
"""

from abl.search.engine import Sweep, SweepOptions, build_tuner
from abl.search.load import load_space
from abl.search.nightly import NightlyConfig, load_nightly, plan_nightly, run_nightly
from abl.search.overrides import Override, apply_overrides, parse_override
from abl.search.space import Dist, Space, When, find_space_file
from abl.search.sweep import run_sweep
from abl.search.variants import count_trials, expand

__all__ = [
    "Dist",
    "NightlyConfig",
    "Override",
    "Space",
    "Sweep",
    "SweepOptions",
    "When",
    "apply_overrides",
    "build_tuner",
    "count_trials",
    "expand",
    "find_space_file",
    "load_nightly",
    "load_space",
    "parse_override",
    "plan_nightly",
    "run_nightly",
    "run_sweep",
]
