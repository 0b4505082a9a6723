"""Benchmarks of abl against raw Ray Tune and a Hydra-style sequential loop, as ratios.

    python -m bench                     # every figure; writes bench/RESULTS.md
    python -m bench --quick             # tiny sizes, a couple of minutes on 2 cores (CI)
    python -m bench --only overhead --repeats 5

Each figure is a module with ``run(quick: bool) -> Figure`` that measures abl and its
baseline side by side in one process, so that a noisy machine moves both; what it reports
are ratios with targets, and absolute seconds for information. See bench/README.md.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from abl.errors import AblError, did_you_mean, one_of
from bench._figure import Figure, Measure, Summary, Target, Verdict, summarize

# Figure name -> module with `run(quick) -> Figure` (and optionally REPEATS), imported lazily.
FIGURES: dict[str, str] = {
    "overhead": "bench.overhead",
    "throughput": "bench.throughput",
    "tracking": "bench.tracking",
    "loop_cost": "bench.loop_cost",
    "report_scale": "bench.scale",
    "driver_memory": "bench.driver_memory",
    "search_efficiency": "bench.search_efficiency",
    "resume": "bench.resume",
    "latency": "bench.latency",
    "command_cost": "bench.command_cost",
    "adaptive_seeds": "bench.adaptive_seeds",
    "adaptive_sweep": "bench.adaptive_sweep",
    "packs": "bench.packs",
}
DEFAULT_REPEATS = 3  # repeats of a figure whose module sets no REPEATS


def figure_module(name: str) -> ModuleType:
    """The module of figure ``name``; an unknown name lists the valid ones."""
    if name not in FIGURES:
        names = list(FIGURES)
        raise AblError(
            f"figure must be one of {one_of(names)}; got '{name}'{did_you_mean(name, names)}"
        )
    return importlib.import_module(FIGURES[name])


def default_repeats(name: str) -> int:
    """How often ``python -m bench`` runs figure ``name`` when ``--repeats`` is not given."""
    return int(getattr(figure_module(name), "REPEATS", DEFAULT_REPEATS))


__all__ = [
    "FIGURES",
    "Figure",
    "Measure",
    "Summary",
    "Target",
    "Verdict",
    "default_repeats",
    "figure_module",
    "summarize",
]
