"""The report's PNGs: marginal effects, interaction heatmaps, learning curves of the top trials.

matplotlib is imported only here and only when a plot is drawn, through ``Figure`` objects
(Agg canvas) rather than pyplot, so nothing global changes and no display is needed::

    from abl.results import marginal_effects, plot_effect

    for effect in marginal_effects(trials, params, "val/loss", "min"):
        plot_effect(effect, "val/loss", Path("plots") / f"effect_{effect.param}.png")
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from abl.results._design import label, levels
from abl.results.aggregate import split_trials
from abl.results.effects import Effect

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 150
_MAX_ANNOTATED = 12  # heatmap cells get their value written in them up to 12 x 12


def slug(name: str) -> str:
    """A file-name-safe version of a parameter or metric name (``val/loss`` -> ``val_loss``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "x"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    """The PNG at ``path`` and an SVG beside it (report.html embeds the vector one)."""
    from matplotlib import rc_context

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    # The constrained layout is the PNG's: laid out again it costs as much as the drawing.
    fig.set_layout_engine("none")
    with rc_context({"svg.fonttype": "none"}):  # text stays text: searchable, and smaller
        fig.savefig(path.with_suffix(".svg"))
    return path


def spans_decades(values: np.ndarray) -> bool:
    """Positive values whose largest is over 10x the smallest: a log axis reads them."""
    finite = values[np.isfinite(values)]
    return bool(len(finite)) and finite.min() > 0 and finite.max() / finite.min() > 10


def log_t_interval(y: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Geometric mean and the t-interval of ``log y`` taken back: never below zero."""
    from scipy import stats

    logs = np.log(y)
    center = float(np.exp(logs.mean()))
    if len(logs) < 2:
        return center, math.nan, math.nan
    half = (
        stats.t.ppf(0.5 + confidence / 2, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))
    )
    return center, float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))


def plot_effect(effect: Effect, metric: str, path: Path) -> Path:
    """Every trial as a point over the mean and 95% CI of ``metric`` at each value of one
    parameter; the best value in color. A metric spanning more than a decade is drawn on a log
    axis with the geometric mean and a t-interval on the log scale (never below zero)."""
    table = effect.table
    x = np.arange(len(table))
    names = [label(v) for v in table["value"]]
    points = effect.points
    y = points["y"].to_numpy(float) if points is not None else np.array([])
    positive = bool(len(y)) and bool(np.all(y[np.isfinite(y)] > 0))
    log_axis = spans_decades(y)
    # A positive metric's interval must not dip below zero (two seeds give t = 12.7): then
    # the interval is taken on the log scale, also on a linear axis.
    logs = log_axis or (positive and bool((table["ci_low"].to_numpy(float) <= 0).any()))
    if logs and points is not None:
        stats = [
            log_t_interval(points.loc[points["value"].map(label) == n, "y"].to_numpy(float))
            for n in names
        ]
        mean = np.array([c for c, _, _ in stats])
        low = np.nan_to_num(mean - np.array([lo for _, lo, _ in stats]))
        high = np.nan_to_num(np.array([hi for _, _, hi in stats]) - mean)
    else:
        mean = table["mean"].to_numpy(float)
        low = np.nan_to_num(mean - table["ci_low"].to_numpy(float))
        high = np.nan_to_num(table["ci_high"].to_numpy(float) - mean)
    fig = _figure(max(3.5, 0.8 * len(x) + 1.5), 3.2)
    ax = fig.add_subplot()
    if points is not None:
        where = {n: i for i, n in enumerate(names)}
        pos = points["value"].map(label).map(where).to_numpy(float)
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(pos))
        ax.scatter(pos + jitter, points["y"], s=9, color="0.6", alpha=0.7, zorder=1, label="trials")
    ax.errorbar(x, mean, yerr=[low, high], fmt="o", capsize=4, color="0.2", zorder=2)
    best = names.index(label(effect.best))
    ax.errorbar(
        [best],
        [mean[best]],
        yerr=[[low[best]], [high[best]]],
        fmt="o",
        capsize=4,
        color="C1",
        zorder=3,
    )
    ax.set_xticks(x, labels=names, rotation=30 if sum(map(len, names)) > 40 else 0)
    ax.set_xlabel(effect.param + (" (quantile bins)" if effect.binned else ""))
    ax.set_ylabel(metric)
    if log_axis:
        ax.set_yscale("log")
    what = "geometric mean, 95% t-interval of log" if logs else "mean and 95% t-interval"
    ax.set_title(f"{effect.param}: {what}; dots: trials", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_heatmap(trials: pd.DataFrame, a: str, b: str, metric: str, mode: str, path: Path) -> Path:
    """Mean of ``metric`` over completed trials for every pair of values of ``a`` and ``b``."""
    ok = split_trials(trials, metric).ok
    grid = ok[metric].astype(float).groupby([levels(ok[a]), levels(ok[b])], observed=True).mean()
    table = grid.unstack(level=1)
    fig = _figure(max(4.0, 0.9 * table.shape[1] + 2.5), max(3.0, 0.5 * table.shape[0] + 1.5))
    ax = fig.add_subplot()
    image = ax.imshow(
        table.to_numpy(float), cmap="viridis_r" if mode == "min" else "viridis", aspect="auto"
    )
    ax.set_xticks(range(table.shape[1]), labels=[label(v) for v in table.columns], rotation=30)
    ax.set_yticks(range(table.shape[0]), labels=[label(v) for v in table.index])
    ax.set_xlabel(b)
    ax.set_ylabel(a)
    ax.set_title(f"mean {metric}", fontsize=10)
    fig.colorbar(image, ax=ax)
    if max(table.shape) <= _MAX_ANNOTATED:
        for (i, j), value in np.ndenumerate(table.to_numpy(float)):
            if np.isfinite(value):
                r, g, b_, _ = image.cmap(image.norm(value))
                ink = "k" if 0.299 * r + 0.587 * g + 0.114 * b_ > 0.5 else "w"
                ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8, color=ink)
    return _save(fig, path)


def plot_curves(
    history: pd.DataFrame,
    groups: Mapping[str, Sequence[str]],
    metrics: Sequence[str],
    path: Path,
) -> Path:
    """One panel per metric (``train/loss`` beside the ranking metric) against epoch: for each
    configuration in ``groups`` (legend -> its trial ids, seeds of one configuration), the mean
    over its trials and a band from their lowest to highest value.

    A history row's ``step`` is the trainable's report count, one per epoch."""
    from matplotlib.ticker import MaxNLocator

    shown = [m for m in metrics if m in history and history[m].notna().any()]
    fig = _figure(4.2 * max(len(shown), 1) + 3.2, 3.8)
    axes = [fig.add_subplot(1, max(len(shown), 1), i + 1) for i in range(max(len(shown), 1))]
    for ax, metric in zip(axes, shown, strict=False):
        for i, (name, trial_ids) in enumerate(groups.items()):
            rows = history[history["trial_id"].isin(list(trial_ids))]
            by_step = rows.groupby("step")[metric].agg(["mean", "min", "max"]).sort_index()
            if by_step["mean"].notna().any():
                color = f"C{i % 10}"
                ax.plot(by_step.index, by_step["mean"], marker=".", color=color, label=name)
                if len(trial_ids) > 1:
                    ax.fill_between(
                        by_step.index, by_step["min"], by_step["max"], color=color, alpha=0.15
                    )
        if spans_decades(history[metric].to_numpy(float)):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title(
        f"top {len(groups)} configurations: mean over seeds, band min-max", fontsize=9, loc="left"
    )
    if axes[-1].lines:
        axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def curve_labels(top: pd.DataFrame, params: Sequence[str], width: int = 60) -> dict[str, str]:
    """Legend entries ``#1 <trial id> a=x b=y`` for the rows of a top-k table."""
    out = {}
    for rank, (_, row) in enumerate(top.iterrows(), start=1):
        config = " ".join(f"{p.rsplit('.', 1)[-1]}={label(row[p])}" for p in params)
        out[str(row["trial_id"])] = f"#{rank} {row['trial_id']} {config}"[:width]
    return out
