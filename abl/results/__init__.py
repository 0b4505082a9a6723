"""Reading and writing a run's results: the Parquet store, then aggregates and reports.

The store is imported eagerly (the Parquet sink needs it on every sweep); the analysis modules
(pandas, and inside their functions scipy, statsmodels, Optuna, matplotlib) load on first use
of one of their names, so ``import abl.results.store`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from abl.results.store import (
    HISTORY,
    TRIALS,
    PartWriter,
    TrialStatus,
    read_history,
    read_table,
    read_trials,
)
from abl.rundir import resolve_run

if TYPE_CHECKING:
    from abl.results.aggregate import (
        Repeats,
        TrialSplit,
        aggregate_repeats,
        split_trials,
        top_trials,
    )
    from abl.results.compare import Comparison, compare_runs
    from abl.results.comparisons import (
        AxisComparison,
        Comparisons,
        PairTest,
        cell_f_test,
        compare_axes,
    )
    from abl.results.digest import (
        DigestPaths,
        Finding,
        Rule,
        Rules,
        SpaceDigest,
        compare_nightly,
        write_digest,
    )
    from abl.results.effects import Effect, marginal_effects
    from abl.results.importance import (
        IMPORTANCE_METHODS,
        FTest,
        Importance,
        ImportanceMethod,
        ImportanceResult,
        MarginalImportance,
        choose_methods,
        compute_importance,
        importance_method,
    )
    from abl.results.plots import plot_curves, plot_effect, plot_heatmap
    from abl.results.report import ReportPaths, build_report
    from abl.results.run import RunData, load_run
    from abl.results.tuned import TunedAnalysis, analyse_tuned

_LAZY = {
    "aggregate": ["Repeats", "TrialSplit", "aggregate_repeats", "split_trials", "top_trials"],
    "compare": ["Comparison", "compare_runs"],
    "comparisons": ["AxisComparison", "Comparisons", "PairTest", "cell_f_test", "compare_axes"],
    "digest": [
        "DigestPaths",
        "Finding",
        "Rule",
        "Rules",
        "SpaceDigest",
        "compare_nightly",
        "write_digest",
    ],
    "effects": ["Effect", "marginal_effects"],
    "importance": [
        "IMPORTANCE_METHODS",
        "FTest",
        "Importance",
        "ImportanceMethod",
        "ImportanceResult",
        "MarginalImportance",
        "choose_methods",
        "compute_importance",
        "importance_method",
    ],
    "plots": ["plot_curves", "plot_effect", "plot_heatmap"],
    "report": ["ReportPaths", "build_report"],
    "run": ["RunData", "load_run"],
    "tuned": ["TunedAnalysis", "analyse_tuned"],
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "HISTORY",
    "IMPORTANCE_METHODS",
    "TRIALS",
    "AxisComparison",
    "Comparison",
    "Comparisons",
    "DigestPaths",
    "Effect",
    "FTest",
    "Finding",
    "Importance",
    "ImportanceMethod",
    "ImportanceResult",
    "MarginalImportance",
    "PairTest",
    "PartWriter",
    "Repeats",
    "ReportPaths",
    "Rule",
    "Rules",
    "RunData",
    "SpaceDigest",
    "TrialSplit",
    "TrialStatus",
    "TunedAnalysis",
    "aggregate_repeats",
    "analyse_tuned",
    "build_report",
    "cell_f_test",
    "choose_methods",
    "compare_axes",
    "compare_nightly",
    "compare_runs",
    "compute_importance",
    "importance_method",
    "load_run",
    "marginal_effects",
    "plot_curves",
    "plot_effect",
    "plot_heatmap",
    "read_history",
    "read_table",
    "read_trials",
    "resolve_run",
    "split_trials",
    "top_trials",
    "write_digest",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"abl.results.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
