"""The pooled seed variance of :func:`abl.results.sequential.assess`: one residual of the
two-way layout configuration x seed index, shared by every comparison.

Model: y[i, s] = mu_i + beta_s + e[i, s], e ~ N(0, sigma^2) with the same sigma in every
configuration (the ANOVA assumption); beta_s is what seed index s shares across
configurations (data order, init), and cancels in a paired difference. A comparison updated
at n seeds has all its members (2 per cell) at seeds < n; every configuration of the *pool*
(unpruned, a finite value at each of the first ``min`` seeds) has seeds < min. Its residual is
that of the two-way layout over exactly this pattern, members x (seeds < n) plus the pool's
other configurations x (seeds < min). The pattern is fixed by the comparison, the look and
the pool, never by which configurations the procedure happened to keep running, so the test's
statistic at every planned look is a function of data that exist whatever the stopping
decisions were (the argument that makes skipped looks harmless, see
:mod:`abl.results.sequential`). Data that exist only because a configuration was kept open
are left out of the residual: using them would make the pool itself data-dependent.

With balanced blocks, the least-squares residual of that pattern is

    RSS = RSS_pool(seeds < min) - RSS_members(seeds < min) + RSS_members(seeds < n),

each RSS the two-way (interaction) residual of a balanced block, with
df = (K - m)(min - 1) + (m - 1)(n - 1) for K configurations in the pool and m members. The
comparison's mean difference lies in the model space, so it is independent of RSS and its t
statistic has exactly df degrees of freedom at each look under the null; the joint law over
looks is simulated by :func:`abl.results._boundary.pooled_maxima`. At 2 seeds a pair among 6
configurations has 5 df in place of 1.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pool:
    """The configurations whose first ``min`` seeds give the pooled residual."""

    rows: frozenset[int]  # configurations in the pool
    rss: float  # two-way residual sum of squares of rows x (seeds < min)
    min: int

    @classmethod
    def of(cls, y: np.ndarray, min_seeds: int, pruned: Collection[int]) -> Pool:
        """The pool of ``y`` (configurations x seed index, NaN where no value)."""
        first = y[:, :min_seeds]
        rows = [i for i in range(len(y)) if i not in pruned and np.all(np.isfinite(first[i]))]
        rss = float(interaction(first[rows][None])[0]) if len(rows) >= 2 else 0.0
        return cls(frozenset(rows), rss, min_seeds)


def residual_df(others: int, members: int, min_seeds: int, seeds: int) -> int:
    """Residual degrees of freedom of a comparison over ``members`` at ``seeds`` seeds with
    ``others`` further configurations in the pool."""
    return others * (min_seeds - 1) + (members - 1) * (seeds - 1)


def interaction(blocks: np.ndarray) -> np.ndarray:
    """Two-way (configuration x seed) residual sum of squares of each block (T, m, n)."""
    dev = (
        blocks
        - blocks.mean(axis=2, keepdims=True)
        - blocks.mean(axis=1, keepdims=True)
        + blocks.mean(axis=(1, 2), keepdims=True)
    )
    return np.sum(dev**2, axis=(1, 2))


def pooled_variance(
    pool: Pool, y: np.ndarray, members: list[np.ndarray], seeds: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per comparison (its ``members``, all of one size, at ``seeds`` seeds): the residual
    variance sigma^2, its df and the others in the pool (see the module docstring)."""
    idx = np.stack(members)
    m = idx.shape[1]
    blocks = y[idx, :seeds]  # (T, m, seeds)
    rss = pool.rss - interaction(blocks[:, :, : pool.min]) + interaction(blocks)
    others = np.full(len(idx), len(pool.rows) - m)
    df = residual_df(len(pool.rows) - m, m, pool.min, seeds) * np.ones(len(idx))
    return np.maximum(rss, 0.0) / df, df, others
