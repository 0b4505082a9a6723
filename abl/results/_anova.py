"""The ``anova`` importance method: functional ANOVA of a sweep.

On a full-factorial grid the decomposition is exact and needs only the cell means: the main
effect of ``a`` is the mean of the cells at each level of ``a`` minus the grand mean, the
interaction of ``a`` and ``b`` is the mean at each ``(a, b)`` minus both main effects and the
grand mean, and a score is the variance of that effect over the cells divided by the variance
of the cell means (the shares of all effects, to every order, sum to 1). When configurations
repeat, statsmodels' OLS with ``C()`` factors and ``anova_lm`` adds an F-test per effect.

On any other design (sampled parameters, missing cells) the scores are type-II sums of squares
of that OLS fit divided by the total sum of squares, with continuous parameters binned.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import combinations

import numpy as np
import pandas as pd

from abl.results._bootstrap import share_intervals
from abl.results._design import factor_codes, is_full_grid, n_levels
from abl.results.importance import FTest, ImportanceMethod, ImportanceResult, sort_scores

OLS_BUDGET = 4_000_000  # rows x design columns of one OLS fit (32 MB of float64); rows beyond
# that are subsampled, and pairwise terms are dropped when fewer than 10 rows per column fit.


class AnovaImportance(ImportanceMethod):
    """Functional ANOVA: variance shares of main effects and pairwise interactions."""

    name = "anova"
    description = "share of variance (functional ANOVA), F-tests when configurations repeat"

    def compute(
        self, frame: pd.DataFrame, params: Sequence[str], metric: str, mode: str
    ) -> ImportanceResult:
        codes = factor_codes(frame, params)
        y = frame[metric].to_numpy(float)
        if is_full_grid(frame, params):
            main, pairs, cells = exact_anova(codes, y)
            note = f"exact, over the means of {cells} grid cells"
            intervals, boot_note = share_intervals(codes, y)
            note += f"; {boot_note}"
            ftests: list[FTest] = []
            if len(frame) > cells:
                _, _, ftests, ols_note = ols_anova(codes, y)
                note += f"; F-tests from OLS on the trials{ols_note}"
            else:
                note += "; one trial per cell: no F-tests"
        else:
            main, pairs, ftests, ols_note = ols_anova(codes, y)
            intervals = {}
            note = f"not a full grid: type-II sums of squares / total (OLS{ols_note}); no interval"
        return ImportanceResult(
            self.name,
            sort_scores(main),
            pairs,
            ftests,
            intervals=intervals,
            n_trials=len(frame),
            note=note,
        )


def exact_anova(
    codes: pd.DataFrame, y: np.ndarray
) -> tuple[dict[str, float], dict[tuple[str, str], float], int]:
    """Main and pairwise variance shares from the cell means of a full grid, and the cell count."""
    params = list(codes.columns)
    cells = codes.assign(_y=y).groupby(params, sort=False)["_y"].mean().reset_index()
    grand = cells["_y"].mean()
    total = float(((cells["_y"] - grand) ** 2).mean())
    if total <= 0:
        zero_pairs = dict.fromkeys(combinations(params, 2), 0.0)
        return dict.fromkeys(params, 0.0), zero_pairs, len(cells)
    effect = {p: cells.groupby(p)["_y"].transform("mean") - grand for p in params}
    main = {p: float((effect[p] ** 2).mean()) / total for p in params}
    pairs = {}
    for a, b in combinations(params, 2):
        ab = cells.groupby([a, b])["_y"].transform("mean") - grand - effect[a] - effect[b]
        pairs[(a, b)] = float((ab**2).mean()) / total
    return main, pairs, len(cells)


def ols_anova(
    codes: pd.DataFrame, y: np.ndarray
) -> tuple[dict[str, float], dict[tuple[str, str], float], list[FTest], str]:
    """Type-II ANOVA of ``y ~ C(a) + C(b) + ... + C(a):C(b) + ...`` with statsmodels.

    Returns the sum-of-squares shares of main effects and pairs, the F-tests, and a note
    (subsampling, dropped pairs) to append to the method's note.
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm  # not statsmodels.api: 0.2 s more imports

    params = list(codes.columns)
    alias = {p: f"x{i}" for i, p in enumerate(params)}
    data = codes.rename(columns=alias).assign(y=y)
    pairs, rows, note = _fit_size(codes)
    if rows < len(data):
        data = data.sample(rows, random_state=0)
        note = f"{note}; on a random {rows} of {len(codes)} trials"
    terms = [f"C({alias[p]})" for p in params]
    terms += [f"C({alias[a]}):C({alias[b]})" for a, b in combinations(params, 2)] if pairs else []
    with warnings.catch_warnings(), _one_blas_thread():
        warnings.simplefilter("ignore")  # rank-deficient designs (empty cells) warn per term
        fit = smf.ols("y ~ " + " + ".join(terms), data=data).fit()
        try:
            table = anova_lm(fit, typ=2)
        except ValueError:  # type II's Wald tests fail on a rank-deficient design
            if fit.df_resid < 1:  # saturated: nothing left to decompose against
                return {p: 0.0 for p in params}, {}, [], f"{note}; saturated fit: no scores"
            table = anova_lm(fit, typ=1)
            note += "; sequential (type-I) sums of squares: the design is rank-deficient"
    total = float(((data["y"] - data["y"].mean()) ** 2).sum())
    back = {f"C({x})": p for p, x in alias.items()}
    main: dict[str, float] = {}
    inter: dict[tuple[str, str], float] = {}
    ftests = []
    for term, row in table.drop(index="Residual").iterrows():
        names = tuple(back[t] for t in str(term).split(":"))
        share = max(float(row["sum_sq"]), 0.0) / total if total > 0 else 0.0
        if len(names) == 1:
            main[names[0]] = share
        else:
            inter[names] = share  # type: ignore[index]
        if math.isfinite(row["F"]):
            label = " × ".join(names)
            ftests.append(
                FTest(
                    label,
                    float(row["F"]),
                    float(row["PR(>F)"]),
                    float(row["df"]),
                    float(fit.df_resid),
                )
            )
    return main, inter, ftests, note


def _fit_size(codes: pd.DataFrame) -> tuple[bool, int, str]:
    """Whether pairwise terms fit the budget, how many rows to use, and a note if cut."""
    lv = n_levels(codes)
    main_cols = 1 + sum(n - 1 for n in lv.values())
    pair_cols = sum((lv[a] - 1) * (lv[b] - 1) for a, b in combinations(codes.columns, 2))
    cols, pairs, note = main_cols + pair_cols, True, ""
    if OLS_BUDGET // cols < 10 * cols:
        cols, pairs, note = main_cols, False, f"; main effects only ({pair_cols} pairwise columns)"
    elif len(codes) <= cols:  # a saturated fit leaves no residual to test against
        cols, pairs = main_cols, False
        note = f"; main effects only (too few trials for {pair_cols} pairwise columns)"
    return pairs, min(len(codes), max(OLS_BUDGET // cols, 10 * cols)), note


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """One BLAS thread for the fit: its matrices are small, and on a busy 2-core machine
    OpenBLAS's spinning threads made each SVD 30x slower (0.64 s instead of 0.02 s)."""
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1):
        yield
