"""Spaces: the format, YAML loading with overrides, checks against the trainables, expansion.

Below both :mod:`abl.search` (which runs a space) and :mod:`abl.results` (which reads a run's
space back); it imports neither, nor ray, torch or mlflow.
"""

from abl.space.load import load_space
from abl.space.overrides import Override, apply_overrides, parse_override
from abl.space.schema import Dist, Space, When, find_space_file, parse_space
from abl.space.variants import count_trials, expand, trial_range

__all__ = [
    "Dist",
    "Override",
    "Space",
    "When",
    "apply_overrides",
    "count_trials",
    "expand",
    "find_space_file",
    "load_space",
    "parse_override",
    "parse_space",
    "trial_range",
]
