"""The null distribution of the largest |B-value| over planned looks, for sequential p-values.

Under no difference, the B-values B(t_l) = z_l * sqrt(t_l) of a group-sequential test at
information fractions t_0 < ... < t_{L-1} = 1 behave as standard Brownian motion sampled at the
t_l (independent increments, cov min(t_i, t_j); Lan & Wittes 1988). :func:`tail` returns
G(c) = P(max_l |B(t_l)| >= c), computed by recursive numerical integration (Armitage,
McPherson & Rowe 1969) as a sum of first-exit probabilities, each with its own Gaussian tail,
so that small tails keep their relative precision (``1 - P(stay inside)`` would not). It is
tabulated once per schedule on a grid of c and interpolated in log G: a call costs one
``np.interp``. With one look, G(c) = 2 (1 - Phi(c)), the fixed-sample two-sided p-value.

:func:`t_tail` is the same G for B-values made from paired t-tests on few seeds, which
Brownian motion under-states (see its docstring); :mod:`abl.results.sequential` uses it.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable

import numpy as np
from scipy import special

GRID_MAX = 9.0  # c beyond this: the Bonferroni bound over looks (G < 1e-18 there)
GRID_STEP = 0.05
PER_SD = 6  # integration nodes per SD of the smallest increment, Simpson's rule
MAX_NODES = 401


def _sf(x: np.ndarray) -> np.ndarray:
    """1 - Phi(x), accurate far into the tail."""
    return 0.5 * special.erfc(x / math.sqrt(2.0))


def _exceed(c: float, fractions: tuple[float, ...]) -> float:
    """P(max_l |W(t_l)| >= c) for standard Brownian motion W: the first exits, look by look."""
    if c <= 0:
        return 1.0
    step = (
        min(math.sqrt(b - a) for a, b in itertools.pairwise(fractions))
        if len(fractions) > 1
        else 1.0
    )
    nodes = min(MAX_NODES, 2 * math.ceil(c * PER_SD / step) + 1)
    x = np.linspace(-c, c, nodes)
    w = np.full(nodes, 2.0)
    w[1::2], w[0], w[-1] = 4.0, 1.0, 1.0
    w *= (x[1] - x[0]) / 3.0  # Simpson weights
    t0 = fractions[0]
    out = 2.0 * float(_sf(np.array(c / math.sqrt(t0))))
    density = np.exp(-(x**2) / (2 * t0)) / math.sqrt(2 * math.pi * t0)  # inside, at look 0
    for prev, t in itertools.pairwise(fractions):
        s = math.sqrt(t - prev)
        exit_ = _sf((c - x) / s) + _sf((c + x) / s)  # from x at the last look to outside now
        out += float(np.sum(w * density * exit_))
        kernel = np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * s * s)) / (
            s * math.sqrt(2 * math.pi)
        )
        density = kernel @ (w * density)
    return min(out, 1.0)


@functools.lru_cache(maxsize=64)
def tail(fractions: tuple[float, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """G(c) = P(max_l |B(t_l)| >= c) under no difference, vectorised over c, for looks at
    ``fractions`` (increasing, the last one 1)."""
    grid = np.arange(0.0, GRID_MAX + GRID_STEP / 2, GRID_STEP)
    log_g = np.log(np.maximum([_exceed(float(c), fractions) for c in grid], 1e-300))
    roots = np.sqrt(np.asarray(fractions))

    def g(c: np.ndarray) -> np.ndarray:
        c = np.asarray(c, dtype=float)
        inside = np.exp(np.interp(np.minimum(c, GRID_MAX), grid, log_g))
        beyond = np.minimum(1.0, 2.0 * _sf(c[..., None] / roots).sum(-1))
        return np.where(c <= GRID_MAX, inside, beyond)

    g.grid, g.log_g = grid, log_g  # type: ignore[attr-defined]
    return g


@functools.lru_cache(maxsize=256)
def critical(fractions: tuple[float, ...], level: float) -> float:
    """The constant boundary C on the B scale with G(C) = ``level`` (O'Brien-Fleming type:
    |z_l| >= C / sqrt(t_l) at look l)."""
    g = tail(fractions)
    grid, log_g = g.grid, g.log_g  # type: ignore[attr-defined]
    return float(np.interp(-math.log(level), -log_g, grid))


DRAWS = 400_000  # simulated null sweeps per (plan, cells): the body of the exact tail
RELIABLE = 200  # below this many simulated maxima beyond b: the Brownian tail, rescaled
SEED = 18  # fixed, so that every process computes the same tail


@functools.lru_cache(maxsize=64)
def t_tail(
    min_seeds: int, max_seeds: int, cells: int, others: int | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """G(b) = P(max_l |B_l| >= b) for B-values made from paired *t*-tests, as assess makes them.

    ``others`` None: each test's own units give its SD (below). An integer: the pooled
    two-way residual of :mod:`abl.results._pooled`, over the test's 2 ``cells`` members at
    every seed so far and ``others`` further configurations at their first ``min_seeds``
    (:func:`pooled_maxima`); one cell and no others is the per-pair statistic itself.

    With few seeds the t-tests' z-values are less correlated from look to look than Brownian
    motion's (each look re-estimates the SD), so the Brownian :func:`tail` under-states the
    maximum: one pair, 2 to 10 seeds, decides 5.7% of the time at alpha = 0.05. Under normal
    seed noise the statistic is pivotal (neither the mean nor the SD matters), so its null
    distribution is simulated here once, for ``cells`` units per seed: per seed, the sum of the
    cells' differences ~ N(0, cells) and their squared deviations ~ chi2(cells - 1). Beyond the
    ``RELIABLE``-th largest simulated maximum, the Brownian tail times the ratio of the two
    there. The p-value (1 + beyond) / (1 + draws) is the usual conservative Monte Carlo one.
    """
    fractions = tuple((min_seeds + look) / max_seeds for look in range(max_seeds - min_seeds + 1))
    if len(fractions) == 1:  # one look: the t-test's own p-value, exactly
        return tail(fractions)
    if others is not None and not (cells == 1 and others == 0):
        return _tail_of(pooled_maxima(min_seeds, max_seeds, cells, others), fractions)
    rng = np.random.default_rng([SEED, min_seeds, max_seeds, cells])
    maxima = []
    for _ in range(DRAWS // 100_000):
        s = rng.normal(0.0, math.sqrt(cells), (100_000, max_seeds))
        q = s**2 / cells + (rng.chisquare(cells - 1, s.shape) if cells > 1 else 0.0)
        cs, cq = np.cumsum(s, axis=1), np.cumsum(q, axis=1)
        best = np.zeros(len(s))
        for look, frac in enumerate(fractions):
            n = cells * (min_seeds + look)
            total, squares = cs[:, min_seeds + look - 1], cq[:, min_seeds + look - 1]
            var = np.maximum(squares - total**2 / n, 0.0) / (n - 1)
            t = (total / n) / np.sqrt(var / n)
            z = -special.ndtri(special.stdtr(n - 1, -np.abs(t)))
            best = np.maximum(best, z * math.sqrt(frac))
        maxima.append(best)
    return _tail_of(np.concatenate(maxima), fractions)


def _tail_of(
    maxima: np.ndarray, fractions: tuple[float, ...]
) -> Callable[[np.ndarray], np.ndarray]:
    """The simulated tail of ``maxima``, the Brownian one rescaled beyond its reliable range."""
    ordered = np.sort(maxima)
    brownian = tail(fractions)
    edge = ordered[-RELIABLE]
    scale = (RELIABLE + 1) / (len(ordered) + 1) / float(brownian(np.array(edge)))

    def g(b: np.ndarray) -> np.ndarray:
        b = np.asarray(b, dtype=float)
        beyond = len(ordered) - np.searchsorted(ordered, b, side="left")
        simulated = (1 + beyond) / (1 + len(ordered))
        return np.where(b < edge, simulated, np.minimum(scale * brownian(b), simulated))

    return g


def pooled_maxima(min_seeds: int, max_seeds: int, cells: int, others: int) -> np.ndarray:
    """Simulated null maxima of |B| for the pooled statistic (pivotal: sigma = 1, no effects).

    The test's members are m = 2 ``cells`` configurations; the two-way residual over them
    splits along orthonormal row contrasts, one of which is the test's own (u, one N(0, 1)
    per seed: its mean is the estimate, its centred squares part of the residual) and m - 2
    others, whose centred sums of squares grow by an independent chi2(m - 2) per added seed
    (Helmert). The other configurations' share is one chi2(others (min - 1)), fixed over looks.
    At n seeds: df = others (min - 1) + (m - 1)(n - 1), t = mean(u) sqrt(n) / s.
    """
    m = 2 * cells
    fractions = [(min_seeds + look) / max_seeds for look in range(max_seeds - min_seeds + 1)]
    rng = np.random.default_rng([SEED, min_seeds, max_seeds, cells, others, 1])
    maxima = []
    for _ in range(DRAWS // 100_000):
        u = rng.normal(size=(100_000, max_seeds))
        grow = rng.chisquare(m - 2, u.shape) if m > 2 else np.zeros(u.shape)
        grow[:, 0] = 0.0  # one seed has no spread
        fixed = rng.chisquare(others * (min_seeds - 1), len(u)) if others else 0.0
        cs, cq, cg = np.cumsum(u, axis=1), np.cumsum(u**2, axis=1), np.cumsum(grow, axis=1)
        best = np.zeros(len(u))
        for look, frac in enumerate(fractions):
            n = min_seeds + look
            total = cs[:, n - 1]
            rss = np.maximum(cq[:, n - 1] - total**2 / n, 0.0) + cg[:, n - 1] + fixed
            df = others * (min_seeds - 1) + (m - 1) * (n - 1)
            t = (total / n) * math.sqrt(n) / np.sqrt(rss / df)
            z = -special.ndtri(special.stdtr(df, -np.abs(t)))
            best = np.maximum(best, z * math.sqrt(frac))
        maxima.append(best)
    return np.concatenate(maxima)


@functools.lru_cache(maxsize=256)
def t_critical(
    min_seeds: int, max_seeds: int, cells: int, level: float, others: int | None = None
) -> float:
    """The constant B-value boundary C with :func:`t_tail` G(C) = ``level`` (bisection)."""
    g = t_tail(min_seeds, max_seeds, cells, others)
    low, high = 0.0, GRID_MAX
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if float(g(np.array(mid))) > level else (low, mid)
    return high
