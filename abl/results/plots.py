"""The report's PNGs: marginal effects, interaction heatmaps, learning curves of the top trials.

matplotlib is imported only here and only when a plot is drawn, through ``Figure`` objects
(Agg canvas) rather than pyplot, so nothing global changes and no display is needed::

    from abl.results import marginal_effects, plot_effect

    for effect in marginal_effects(trials, params, "val/loss", "min"):
        plot_effect(effect, "val/loss", Path("plots") / f"effect_{effect.param}.png")
"""

from __future__ import annotations

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

DPI = 110
_MAX_ANNOTATED = 12  # heatmap cells get their value written in them up to 12 x 12


def slug(name: str) -> str:
    """A file-name-safe version of a parameter or metric name (``val/loss`` -> ``val_loss``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "x"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_effect(effect: Effect, metric: str, path: Path) -> Path:
    """Mean and 95% CI of ``metric`` at each value of one parameter; the best value in color."""
    table = effect.table
    x = np.arange(len(table))
    mean = table["mean"].to_numpy(float)
    low = np.nan_to_num(mean - table["ci_low"].to_numpy(float))
    high = np.nan_to_num(table["ci_high"].to_numpy(float) - mean)
    names = [label(v) for v in table["value"]]
    fig = _figure(max(3.5, 0.8 * len(x) + 1.5), 3.2)
    ax = fig.add_subplot()
    ax.errorbar(x, mean, yerr=[low, high], fmt="o", capsize=4, color="0.35")
    best = names.index(label(effect.best))
    ax.errorbar(
        [best], [mean[best]], yerr=[[low[best]], [high[best]]], fmt="o", capsize=4, color="C1"
    )
    ax.set_xticks(x, labels=names, rotation=30 if sum(map(len, names)) > 40 else 0)
    ax.set_xlabel(effect.param + (" (quantile bins)" if effect.binned else ""))
    ax.set_ylabel(metric)
    ax.set_title(f"{effect.param}: mean and 95% CI", fontsize=10)
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


def plot_curves(history: pd.DataFrame, names: Mapping[str, str], metric: str, path: Path) -> Path:
    """``metric`` against epoch for each trial in ``names`` (trial id -> legend), in that order.

    A history row's ``step`` is the trainable's report count, one per epoch."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(9.0, 3.8)
    ax = fig.add_subplot()
    values = history[metric].astype(float) if metric in history else pd.Series(dtype=float)
    for trial_id, name in names.items():
        rows = history[history["trial_id"] == trial_id]
        if metric in rows and rows[metric].notna().any():
            rows = rows.sort_values("step")
            ax.plot(rows["step"], rows[metric], marker=".", label=name)
    positive = values[np.isfinite(values)]
    if len(positive) and positive.min() > 0 and positive.max() / positive.min() > 100:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} of the top {len(names)} trials", fontsize=10)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax.lines:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def curve_labels(top: pd.DataFrame, params: Sequence[str], width: int = 60) -> dict[str, str]:
    """Legend entries ``#1 <trial id> a=x b=y`` for the rows of a top-k table."""
    out = {}
    for rank, (_, row) in enumerate(top.iterrows(), start=1):
        config = " ".join(f"{p.rsplit('.', 1)[-1]}={label(row[p])}" for p in params)
        out[str(row["trial_id"])] = f"#{rank} {row['trial_id']} {config}"[:width]
    return out
