"""Figure ``report_scale``: how long ``abl report`` takes on 1,000 to 100,000 trials.

    python -m bench --only report_scale

A thin wrapper: :mod:`bench.report_scale` (its own module, also a script) writes a
synthetic finished run of ``n`` trials and builds its report in a fresh process. This figure
calls its ``run(n)`` for 1k, 10k and 100k trials (1k with ``--quick``) and judges the 10k
and 100k reports against the targets that module states (30 s and 5 min on 2 cores). Unlike
the other figures this one is absolute seconds: the report has no baseline to run beside it.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from bench._figure import Figure, at_most

REPEATS = 1
SIZES, QUICK_SIZES = (1_000, 10_000, 100_000), (1_000,)
TARGET_S = {10_000: 30.0, 100_000: 300.0}  # from bench/report_scale.py's docstring


def report_scale() -> Any | None:
    """``bench.report_scale`` if it exists and imports, else None."""
    if importlib.util.find_spec("bench.report_scale") is None:
        return None
    return importlib.import_module("bench.report_scale")


def run(quick: bool) -> Figure:
    """Seconds and peak RSS of building the report of synthetic runs of each size."""
    sizes = QUICK_SIZES if quick else SIZES
    fig = Figure(
        "report_scale", f"abl report on synthetic runs of {', '.join(map(str, sizes))} trials"
    )
    module = report_scale()
    if module is None or not hasattr(module, "run"):
        fig.skipped = "bench/report_scale.py (with run(n_trials)) does not exist yet"
        return fig
    caller_mb = 0.0
    for n in sizes:
        caller_mb = max(caller_mb, own_rss_mb())
        out: dict[str, Any] = module.run(n)
        target = TARGET_S.get(n)
        fig.add(
            f"{n:,} trials: report process",
            out["seconds"],
            "s",
            at_most(target) if target else None,
        )
        fig.add(f"{n:,} trials: build_report alone", out["report_s"], "s")
        fig.add(f"{n:,} trials: peak RSS", out["peak_rss_mb"], "MB")
    fig.add("this process's RSS when it spawned the reports", caller_mb, "MB")
    fig.notes.append("absolute seconds: the report process includes the interpreter and imports")
    fig.notes.append(
        "peak RSS is the report process's own VmHWM, which starts afresh at exec; the row "
        "above is the bench's own RSS, for comparison"
    )
    return fig


def own_rss_mb() -> float:
    """This process's resident memory in MB (``VmRSS``; 0 where ``/proc`` is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
