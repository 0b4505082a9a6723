"""A run's report, rebuilt from its Parquet files alone: which choices matter, and how much.

    abl report abl-runs/quickstart/2025-04-21_17-39-20 --by model.kind --pair model.pe_type,model.is_causal

writes into the run directory ``report.md`` (GitHub markdown, to paste into a logbook),
``report.html`` (the same, one self-contained file), ``importance.json`` and ``plots/*.png``.

The report opens with its answer (:mod:`abl.results._verdict`): a warning when the ranking
metric leaks for non-causal arms or never moved, "no ablation effect detectable at this budget"
when nothing differs beyond seed noise, and one sentence per ablation axis from the matched
comparisons of :mod:`abl.results.comparisons`. Then the sweep, the top trials, repeats,
importance (with seed intervals), marginal effects, heatmaps, curves and failures.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from abl.errors import AblError
from abl.results import _findings, _sections, _tuned_section, _verdict
from abl.results._design import label, python_value
from abl.results._doc import Block, to_html, to_markdown
from abl.results._sections import Analysis
from abl.results._verdict import judge
from abl.results.aggregate import aggregate_repeats, split_trials, top_trials
from abl.results.comparisons import cell_f_test, compare_axes
from abl.results.effects import Effect, marginal_effects
from abl.results.importance import ALL, Importance, compute_importance
from abl.results.plots import plot_curves, plot_effect, plot_heatmap, slug
from abl.results.run import RunData, load_run
from abl.results.seeds import seed_rounds

REPORT_MD, REPORT_HTML, IMPORTANCE_JSON, PLOTS = (
    "report.md",
    "report.html",
    "importance.json",
    "plots",
)
MAX_CURVES = 10  # learning curves drawn in one plot


@dataclass(frozen=True)
class ReportPaths:
    """What :func:`build_report` wrote."""

    markdown: Path
    html: Path
    importance: Path
    plots: list[Path]

    def files(self) -> list[Path]:
        """Every file written, e.g. to log as MLflow artifacts."""
        return [self.markdown, self.html, self.importance, *self.plots]


def report_files(run_dir: Path, metric: str, space_metric: str) -> tuple[Path, Path, Path, Path]:
    """``report.md, report.html, importance.json, plots/`` of the space's ranking metric;
    another metric's report goes beside it (``report.predict_mse_regressive.md``, ...,
    ``plots/predict_mse_regressive/``), so neither overwrites the other."""
    if metric == space_metric:
        return (
            run_dir / REPORT_MD,
            run_dir / REPORT_HTML,
            run_dir / IMPORTANCE_JSON,
            run_dir / PLOTS,
        )
    tag = slug(metric)
    return (
        run_dir / f"report.{tag}.md",
        run_dir / f"report.{tag}.html",
        run_dir / f"importance.{tag}.json",
        run_dir / PLOTS / tag,
    )


# What a report imports on first use, heavy enough (about 1.5 s on 2 cores) that a sweep
# loads it on a thread while its trials run (:func:`preload`).
_HEAVY = (
    "scipy.stats",
    "statsmodels.formula.api",
    "statsmodels.regression.linear_model",
    "statsmodels.stats.anova",
    "statsmodels.stats.power",
    "optuna.importance",  # fANOVA: scikit-learn
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "matplotlib.backends.backend_svg",
)


def preload() -> None:
    """Import the modules building a report loads on first use, so that it starts at once."""
    for name in _HEAVY:
        importlib.import_module(name)


def build_report(
    run_dir: Path,
    *,
    metric: str | None = None,
    mode: str | None = None,
    by: str | None = None,
    pairs: Sequence[tuple[str, str] | str] = (),
    k: int = 10,
) -> ReportPaths:
    """(Re)build the report of ``run_dir``; ``metric`` defaults to the space's.

    A report for another metric is written beside the space's (see :func:`report_files`);
    ``mode`` gives the direction of a metric abl does not know (built-in metrics declare
    theirs). ``by`` computes importance within each value of a parameter; ``pairs``
    (``(a, b)`` or ``"a,b"``) adds interaction heatmaps to the one of the two most
    interacting parameters.

    >>> from abl.results import build_report
    >>> paths = build_report(Path("abl-runs/quickstart/2025-04-21_17-39-20"))  # doctest: +SKIP
    >>> paths.markdown.read_text().splitlines()[0]  # doctest: +SKIP
    '# quickstart: which choices matter for val/loss'
    """
    run = load_run(Path(run_dir))
    metric = run.check_metric(metric)
    if by is not None:
        run.check_param(by)
    chosen = [_check_pair(run, p) for p in pairs]
    if k < 1:
        raise AblError(f"k must be at least 1; got {k}")
    analysis = analyse(run, metric, by=by, k=k, mode=run.mode_of(metric, mode))
    out = report_files(run.run_dir, metric, run.metric)[3]
    for old in [*out.glob("*.png"), *out.glob("*.svg")]:  # a rebuilt report leaves no stale plot
        old.unlink()
    heat = _heat_pairs(analysis.importance, chosen) if len(analysis.split.ok) else []
    analysis.plots = draw_plots(analysis, heat, out) if len(analysis.split.ok) else {}
    return _write(analysis, heat)


def analyse(
    run: RunData, metric: str, *, by: str | None = None, k: int = 10, mode: str | None = None
) -> Analysis:
    """Rank, aggregate repeats, compute importance and marginal effects (no files written)."""
    mode = mode or run.mode_of(metric)
    importance = compute_importance(run.trials, run.params, metric, mode, by=by)
    effects = marginal_effects(run.trials, run.params, metric, mode)
    tuned, comparisons = None, None
    if run.space.tune is not None:
        from abl.results.tuned import analyse_tuned

        tuned = analyse_tuned(run.trials, run.space, metric, mode)
    else:  # a tuned ablation's arms are compared in its own section
        comparisons = compare_axes(run.trials, run.space, metric, mode)
    split = split_trials(run.trials, metric)
    f_p = cell_f_test(run.trials, run.params, metric)
    seeds = seed_rounds(run.trials, run.space) if metric == run.metric else None
    return Analysis(
        run=run,
        metric=metric,
        mode=mode,
        k=k,
        split=split,
        top=top_trials(run.trials, metric, mode, k),
        repeats=aggregate_repeats(run.trials, run.params, metric, mode),
        importance=importance,
        effects=_by_importance(effects, importance),
        tuned=tuned,
        comparisons=comparisons,
        verdict=judge(run, split.ok, metric, comparisons, f_p),
        seeds=seeds,
    )


def _check_pair(run: RunData, pair: tuple[str, str] | str) -> tuple[str, str]:
    names = tuple(pair.split(",")) if isinstance(pair, str) else tuple(pair)
    if len(names) != 2 or names[0] == names[1]:
        raise AblError(f"a pair is two different parameters 'a,b'; got '{pair}'")
    return run.check_param(names[0].strip()), run.check_param(names[1].strip())


def _by_importance(effects: list[Effect], imp: Importance) -> list[Effect]:
    """Effects ordered by the first method's ranking (or by how far they move the metric)."""
    results = imp.groups.get(ALL) or next(iter(imp.groups.values()), [])
    order = results[0].ranking() if results else []
    rank = {p: i for i, p in enumerate(order)}
    return sorted(effects, key=lambda e: (rank.get(e.param, len(rank)), -e.spread))


def _heat_pairs(imp: Importance, chosen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The two most interacting parameters by anova (over all trials), then the chosen pairs."""
    results = imp.groups.get(ALL, [])
    found = next((r.top_interaction() for r in results if r.interactions), None)
    seen: set[frozenset[str]] = set()
    out = []
    for pair in ([found] if found else []) + chosen:
        if frozenset(pair) not in seen:
            seen.add(frozenset(pair))
            out.append(pair)
    return out


def draw_plots(a: Analysis, heat: list[tuple[str, str]], out: Path) -> dict[str, list[Path]]:
    """Draw the PNGs; returns section -> paths relative to the run directory."""
    base = a.run.run_dir
    plots: dict[str, list[Path]] = {"effects": [], "heatmaps": [], "curves": [], "tuned": []}
    if a.tuned is not None and a.tuned.arms:
        path = _tuned_section.plot_isolation(a.tuned, _tuned_section.plot_path(out, a.metric))
        plots["tuned"].append(path.relative_to(base))
    for e in a.effects:
        path = plot_effect(e, a.metric, out / f"effect_{slug(e.param)}.png")
        plots["effects"].append(path.relative_to(base))
    trials = a.split.ok
    for x, y in heat:
        path = plot_heatmap(
            trials, x, y, a.metric, a.mode, out / f"heatmap_{slug(x)}__{slug(y)}.png"
        )
        plots["heatmaps"].append(path.relative_to(base))
    groups = config_groups(a.split.ok, a.top, a.run.params, MAX_CURVES)
    metrics = [m for m in ("train/loss", a.metric) if m != a.metric] + [a.metric]
    ids = [t for members in groups.values() for t in members]
    history = a.run.history(ids, metrics)
    if len(history) and history[a.metric].notna().any():
        path = plot_curves(history, groups, metrics, out / f"curves_{slug(a.metric)}.png")
        plots["curves"].append(path.relative_to(base))
    return plots


def config_groups(
    ok: pd.DataFrame, top: pd.DataFrame, params: Sequence[str], n: int
) -> dict[str, list[str]]:
    """The configurations of the best trials, best first, each with every completed trial
    (its seeds): legend ``#rank a=x b=y (n seeds)`` -> trial ids."""
    keys = [p for p in params if p in ok]
    configs = ok[keys].map(label).agg(" ".join, axis=1) if keys else pd.Series("", index=ok.index)
    members = {
        c: ok.loc[rows, "trial_id"].astype(str).tolist()
        for c, rows in configs.groupby(configs, sort=False).groups.items()
    }
    chosen: dict[str, tuple[str, list[str]]] = {}  # config -> (legend, trial ids)
    for _, row in top.iterrows():
        config = " ".join(label(row[k]) for k in keys)
        if len(chosen) == n or config in chosen:
            continue
        ids = members.get(config, [])
        text = " ".join(f"{k.rsplit('.', 1)[-1]}={label(row[k])}" for k in keys)
        chosen[config] = (f"#{len(chosen) + 1} {text} ({len(ids)} seeds)"[:60], ids)
    return dict(chosen.values())


def compose(a: Analysis, heat: list[tuple[str, str]]) -> list[Block]:
    """The report's blocks, in reading order."""
    blocks = _sections.header(a)
    if not len(a.split.ok):
        return blocks + _sections.summary(a) + _sections.nothing_to_rank(a) + _sections.failures(a)
    verdict = _verdict.section(a.verdict, a.comparisons, a.mode) if a.verdict else []
    return (
        blocks
        + verdict
        + _sections.summary(a)
        + _tuned_section.section(a)
        + _sections.top_table(a)
        + _sections.repeats(a)
        + _sections.seeds(a)
        + _findings.importance(a)
        + _findings.effects(a)
        + _findings.heatmaps(a, heat)
        + _findings.curves(a)
        + _sections.failures(a)
    )


def _write(a: Analysis, heat: list[tuple[str, str]]) -> ReportPaths:
    run_dir = a.run.run_dir
    blocks = compose(a, heat)
    md, page, imp, _ = report_files(run_dir, a.metric, a.run.metric)
    md.write_text(to_markdown(blocks), encoding="utf-8")
    page.write_text(
        to_html(blocks, title=f"{a.run.space.name} report", base=run_dir), encoding="utf-8"
    )
    imp.write_text(
        json.dumps(importance_json(a), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    plots = [run_dir / p for paths in a.plots.values() for p in paths]
    return ReportPaths(md, page, imp, plots)


def importance_json(a: Analysis) -> dict[str, Any]:
    """importance.json: the run, the trial counts, every method's scores, and the effects."""
    return {
        "run": str(a.run.run_dir),
        "trials": {"total": len(a.run.trials), **a.split.counts()},
        **a.importance.to_json(),
        **({"tuned": a.tuned.to_json()} if a.tuned is not None else {}),
        **({"comparisons": a.comparisons.to_json()} if a.comparisons is not None else {}),
        "verdict": _verdict_json(a),
        **({"seeds": a.seeds.to_json()} if a.seeds is not None else {}),
        "effects": [
            {
                "param": e.param,
                "best": _plain(e.best),
                "runner_up": _plain(e.runner_up),
                "cohens_d": _finite(e.d),
            }
            for e in a.effects
        ],
    }


def _verdict_json(a: Analysis) -> dict[str, Any]:
    v = a.verdict
    if v is None:
        return {}
    return {
        "no_effect_detectable": v.noise,
        "why": v.no_effect,
        "f_test_p": _finite(v.f_p) if v.f_p is not None else None,
        "leaky_metric": v.leak is not None,
        "metric_never_moved": v.stuck,
    }


def _plain(value: Any) -> Any:
    value = python_value(value)
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
