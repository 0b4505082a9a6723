"""Figure ``adaptive_sweep``: a real PE ablation with adaptive seeds against a fixed six seeds.

    python -m bench --only adaptive_sweep

``bench/spaces/adaptive_pe.yaml`` (logbook 003's bigram + one causal attention layer, PE
type x context length, 6 configurations) runs twice through ``run_sweep``: with a fixed
``repeats: 6`` (36 trials) and with ``repeats: {min: 2, max: 6}``. Both rank the
configurations by their mean ``val/loss`` over seeds; the figure compares the two rankings
(Kendall's tau, the same best configuration, each axis' values in the same order) and the
trials each spent. Seeds are the same in both runs (seed i of a configuration is the same
trial in both), so the adaptive run's trials are a subset of the fixed run's: where they
disagree, it is because the adaptive run stopped a configuration before its later seeds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench._env import BENCH_DIR, Stopwatch, ensure_ray, quiet_console
from bench._figure import Figure, at_least, at_most

REPEATS = 1  # two sweeps of a few minutes each
SPACE = BENCH_DIR / "spaces" / "adaptive_pe.yaml"
ADAPTIVE = "repeats={min: 2, max: 6}"
QUICK = (
    "train.epochs=1",
    "data.epoch_batches=20",
    "data.block_size=8,64",
    "model.pe_type=randn,rope",
)


def sweep(root: Path, *overrides: str) -> tuple[Any, float]:
    """Run the space with ``overrides``; its trials (pandas) and wall seconds."""
    from abl.results import load_run
    from abl.search import SweepOptions, run_sweep
    from abl.space import load_space

    space = load_space(str(SPACE), list(overrides))
    options = SweepOptions(root=root, dashboard=False, report=True, freeze_gc=False)
    with Stopwatch() as sw:
        done = run_sweep(space, options, console=quiet_console())
    if done.errors or done.unfinished:
        raise RuntimeError(f"{space.name}: {done.errors or f'{done.unfinished} unfinished'}")
    return load_run(done.run_dir), sw.seconds


def means(run: Any) -> Any:
    """Mean val/loss per configuration (pe_type, block_size), completed trials only."""
    trials = run.trials[run.trials["status"] == "completed"]
    return trials.groupby(["model.pe_type", "data.block_size"])[run.metric].mean()


def run(quick: bool) -> Figure:
    """The fixed and the adaptive sweep of one PE ablation, side by side."""
    from scipy import stats

    fig = Figure("adaptive_sweep", "PE ablation (logbook 003): adaptive seeds vs a fixed 6")
    ensure_ray()
    extra = QUICK if quick else ()
    with tempfile.TemporaryDirectory(prefix="abl-bench-adaptive-") as tmp:
        fixed, fixed_s = sweep(Path(tmp), *extra)
        adaptive, adaptive_s = sweep(Path(tmp), *extra, ADAPTIVE)
        seeds_md = (adaptive.run_dir / "report.md").read_text().split("## Seeds", 1)[-1]
        seeds_md = seeds_md.split("\n## ", 1)[0]
    a, f = means(adaptive), means(fixed)
    tau = stats.kendalltau(a.loc[f.index].to_numpy(), f.to_numpy()).statistic
    fig.add(
        "trials: adaptive / fixed 6 seeds",
        len(adaptive.trials) / len(fixed.trials),
        "x",
        at_most(0.75),
    )
    fig.add("same best configuration", float(a.idxmin() == f.idxmin()), "x", at_least(1))
    fig.add("Kendall's tau of the configuration means", tau, "x")
    for axis in ("model.pe_type", "data.block_size"):
        order_a = adaptive.trials.groupby(axis)[adaptive.metric].mean().sort_values().index
        order_f = fixed.trials.groupby(axis)[fixed.metric].mean().sort_values().index
        fig.add(f"{axis}: values in the same order", float(list(order_a) == list(order_f)), "x")
    fig.add("trials, fixed", len(fixed.trials), "trials")
    fig.add("trials, adaptive", len(adaptive.trials), "trials")
    fig.add("wall seconds, fixed", fixed_s, "s")
    fig.add("wall seconds, adaptive", adaptive_s, "s")
    per = adaptive.trials.groupby(["model.pe_type", "data.block_size"]).size()
    fig.notes.append(
        "adaptive seeds per configuration: "
        + ", ".join(f"{pe}/{block}: {n}" for (pe, block), n in per.items())
    )
    fig.notes.append(
        "fixed means: " + ", ".join(f"{pe}/{block} {v:.4f}" for (pe, block), v in f.items())
    )
    fig.notes.append(
        "adaptive means: " + ", ".join(f"{pe}/{block} {v:.4f}" for (pe, block), v in a.items())
    )
    decisions = [line[2:] for line in seeds_md.splitlines() if line.startswith("- ")]
    fig.notes.append("the adaptive run's decisions: " + ("; ".join(decisions) or "none"))
    return fig
