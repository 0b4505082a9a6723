"""How firm an importance share is: a bootstrap that resamples seeds within grid cells.

Every grid cell's trials (its seeds) are drawn with replacement, the cell means recomputed and
the exact functional ANOVA's main-effect shares recomputed from them (:func:`share_intervals`;
``marginal``'s eta squared likewise, :func:`eta_intervals`), ``RESAMPLES`` times with a fixed
seed. fANOVA, PED-ANOVA and the OLS ANOVA of sampled designs refit a model per resample, which
is not cheap: they have no interval. The 2.5% and 97.5% quantiles of a share over the resamples are its interval: how
far the share moves with seed noise alone (the grid's cells are fixed, only seeds are redrawn).
Resampling only adds variance, so a share near zero can have every resample above it; the
interval is then extended down to the observed share, so it always contains it.

Cost: one integer draw per trial and resample, vectorised over cells of equal size and over
resamples in chunks, so memory stays under ``CHUNK`` draws at a time. Beyond
``DRAW_BUDGET`` draws (200 resamples x 100,000 trials) the resamples are capped, never below
``MIN_RESAMPLES``, and the note says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

RESAMPLES = 200
MIN_RESAMPLES = 50
DRAW_BUDGET = 20_000_000  # trials x resamples
CHUNK = 2_000_000  # draws held in memory at once
LEVEL = 0.95
SEED = 0


def share_intervals(
    codes: pd.DataFrame, y: np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[dict[str, tuple[float, float]], str]:
    """Percentile intervals of the main-effect shares of a full grid, and a note.

    ``codes`` are the trials' factor codes (every combination present), ``y`` their metric.
    No interval (an empty dict) when no cell has two trials: there is no seed to resample.
    """
    params = list(codes.columns)
    dims = tuple(int(codes[p].max()) + 1 for p in params)
    flat = np.ravel_multi_index(tuple(codes[p].to_numpy() for p in params), dims)
    sizes = np.bincount(flat, minlength=int(np.prod(dims)))
    if sizes.max() < 2:
        return {}, "one trial per cell: no seed to resample, no interval"
    b = min(resamples, max(MIN_RESAMPLES, DRAW_BUDGET // len(y)))
    means = _resampled_means(flat, y, sizes, b, np.random.default_rng(seed))
    shares = _main_shares(means.reshape(b, *dims))
    observed = np.bincount(flat, weights=y, minlength=len(sizes)) / sizes
    point = _main_shares(observed.reshape(1, *dims))[0]
    return _intervals(shares, point, params, resamples, len(y), "cell")


def _resampled_means(
    flat: np.ndarray, y: np.ndarray, sizes: np.ndarray, b: int, rng: np.random.Generator
) -> np.ndarray:
    """(b, cells) cell means, each cell's trials drawn with replacement."""
    order = np.argsort(flat, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ys = y[order]
    out = np.empty((b, len(sizes)))
    for n in np.unique(sizes):
        cells = np.flatnonzero(sizes == n)
        if n == 1:
            out[:, cells] = ys[starts[cells]]
            continue
        step = max(1, CHUNK // (len(cells) * n))
        for lo in range(0, b, step):
            k = min(step, b - lo)
            draws = rng.integers(0, n, size=(k, len(cells), n)) + starts[cells][None, :, None]
            out[lo : lo + k, cells] = ys[draws].mean(axis=-1)
    return out


def _main_shares(means: np.ndarray) -> np.ndarray:
    """(b, params) main-effect variance shares of (b, k1, ..., kd) cell means (a full grid)."""
    axes = tuple(range(1, means.ndim))
    grand = means.mean(axis=axes, keepdims=True)
    total = ((means - grand) ** 2).mean(axis=axes)
    out = np.empty((means.shape[0], means.ndim - 1))
    for i in range(means.ndim - 1):
        other = tuple(a for a in axes if a != i + 1)
        effect = means.mean(axis=other) - grand.reshape(-1, 1)
        out[:, i] = (effect**2).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total[:, None] > 0, out / total[:, None], 0.0)


def eta_intervals(
    frame: pd.DataFrame,
    params: list[str],
    y: np.ndarray,
    level_codes: pd.DataFrame,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[dict[str, tuple[float, float]], str]:
    """Percentile intervals of every parameter's eta squared (``marginal``), resampling the
    trials of each configuration (same values of every parameter) with replacement.

    ``level_codes`` are the display levels the scores group by (continuous parameters binned);
    configurations are the raw values, so a sampled parameter makes every trial its own.
    """
    cells = frame.groupby(list(params), sort=False, dropna=False).ngroup().to_numpy()
    sizes = np.bincount(cells)
    if sizes.max() < 2:
        return {}, "no configuration ran twice: no seed to resample, no interval"
    b = min(resamples, max(MIN_RESAMPLES, DRAW_BUDGET // len(y)))
    rng = np.random.default_rng(seed)
    members = np.argsort(cells, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    step = max(1, CHUNK // len(y))
    scores = np.empty((b, len(params)))
    for lo in range(0, b, step):
        k = min(step, b - lo)
        ys = _redraw(y, members, starts, sizes, k, rng)
        scores[lo : lo + k] = _eta(ys, level_codes)
    point = _eta(y[None, :], level_codes)[0]
    return _intervals(scores, point, params, resamples, len(y), "configuration")


def _intervals(
    scores: np.ndarray, point: np.ndarray, params: Any, resamples: int, n: int, unit: str
) -> tuple[dict[str, tuple[float, float]], str]:
    """Per-parameter quantile intervals of ``scores`` (resamples x params), widened to hold the
    observed ``point``, and the note that says how they were drawn."""
    low, high = np.quantile(scores, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
    low, high = np.minimum(low, point), np.maximum(high, point)
    note = f"{LEVEL:.0%} intervals from {len(scores)} resamples of the seeds within each {unit}"
    if len(scores) < resamples:
        note += f" (capped from {resamples} for {n} trials)"
    return {p: (float(low[i]), float(high[i])) for i, p in enumerate(params)}, note


def _redraw(
    y: np.ndarray,
    members: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    k: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(k, trials): every trial's value replaced by a draw from its configuration's trials."""
    out = np.broadcast_to(y, (k, len(y))).copy()
    for n in np.unique(sizes[sizes > 1]):
        cells = np.flatnonzero(sizes == n)
        slots = starts[cells][:, None] + np.arange(n)[None, :]  # (cells, n) positions
        where = members[slots]  # trial indices of each configuration
        draws = rng.integers(0, n, size=(k, len(cells), n))
        picked = where[np.arange(len(cells))[None, :, None], draws]
        out[:, where.ravel()] = y[picked].reshape(k, -1)
    return out


def _eta(ys: np.ndarray, level_codes: pd.DataFrame) -> np.ndarray:
    """(k, params) share of variance explained by each parameter's levels alone."""
    grand = ys.mean(axis=1, keepdims=True)
    total = ((ys - grand) ** 2).sum(axis=1)
    out = np.empty((ys.shape[0], level_codes.shape[1]))
    for i, p in enumerate(level_codes.columns):
        codes = level_codes[p].to_numpy()
        counts = np.bincount(codes)
        onehot = np.zeros((len(codes), len(counts)))
        onehot[np.arange(len(codes)), codes] = 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            means = ys @ onehot / counts
        between = (counts * np.nan_to_num(means - grand) ** 2).sum(axis=1)
        out[:, i] = np.where(total > 0, between / np.where(total > 0, total, 1), 0.0)
    return out
