"""How the results modules see a sweep's parameters: levels, bins, factor codes, grids.

A parameter with at most ``MAX_LEVELS`` distinct values (grid axes, booleans, strings)
is *categorical*; a numeric one with more (a sampled learning rate) is *continuous* and is cut
into ``N_BINS`` quantile bins wherever means per value are needed (effects, heatmaps, ANOVA).
A conditional parameter's missing value is a level of its own, ``UNSET``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

MAX_LEVELS = 20  # more distinct numeric values than this: a continuous parameter
N_BINS = 5  # quantile bins of a continuous parameter
UNSET = "(unset)"  # the level of a conditional parameter in trials where it does not apply


def is_continuous(values: pd.Series) -> bool:
    """A numeric (not boolean) parameter with more than ``MAX_LEVELS`` distinct values."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return bool(numeric and values.nunique(dropna=True) > MAX_LEVELS)


def is_log_scaled(values: pd.Series) -> bool:
    """A continuous parameter over positive values spanning two decades or more."""
    if not is_continuous(values):
        return False
    low, high = float(values.min()), float(values.max())
    return low > 0 and high / low >= 100


def varying(frame: pd.DataFrame, params: Sequence[str]) -> list[str]:
    """The parameters that take at least two values (a missing value counts as one) in ``frame``."""
    return [p for p in params if p in frame.columns and frame[p].nunique(dropna=False) > 1]


def levels(values: pd.Series) -> pd.Series:
    """Display levels of a parameter: bins for continuous ones, ``UNSET`` for missing values.

    The result is an ordered categorical, so a groupby on it lists levels in natural order
    (numbers ascending, then strings, then ``UNSET``).
    """
    if is_continuous(values):
        return _bins(values)
    order = sorted(values.dropna().unique().tolist(), key=natural_key)
    labels = values.astype(object).where(values.notna(), UNSET)
    if values.isna().any():
        order.append(UNSET)
    return pd.Series(
        pd.Categorical(labels, categories=order, ordered=True), index=values.index, name=values.name
    )


def natural_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, (bool, np.bool_, int, float, np.number)):
        return (0, float(value))
    return (1, str(value))


def _bins(values: pd.Series) -> pd.Series:
    cut = pd.qcut(values, N_BINS, duplicates="drop")
    names = [f"{iv.left:.3g} to {iv.right:.3g}" for iv in cut.cat.categories]
    cut = cut.cat.rename_categories(names)
    if values.isna().any():
        cut = cut.cat.add_categories([UNSET]).fillna(UNSET)
    return cut.cat.as_ordered()


def factor_codes(frame: pd.DataFrame, params: Sequence[str]) -> pd.DataFrame:
    """Every parameter as integer level codes (continuous ones binned), same index as ``frame``."""
    return pd.DataFrame(
        {p: levels(frame[p]).cat.codes.astype(np.int32) for p in params}, index=frame.index
    )


def n_levels(codes: pd.DataFrame) -> dict[str, int]:
    """Distinct codes per column of :func:`factor_codes`."""
    return {p: int(codes[p].nunique()) for p in codes.columns}


def is_full_grid(frame: pd.DataFrame, params: Sequence[str]) -> bool:
    """True when every parameter is categorical and every combination of levels was observed.

    That is a full-factorial design: cell means are balanced and functional ANOVA is exact.
    """
    if not params or any(is_continuous(frame[p]) for p in params):
        return False
    codes = factor_codes(frame, params)
    cells = len(codes.drop_duplicates())
    return cells == math.prod(n_levels(codes).values())


def python_value(value: Any) -> Any:
    """A numpy scalar as the plain Python value (None for missing), for JSON and Optuna."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if isinstance(value, np.generic) else value


def label(value: Any) -> str:
    """A parameter value as text: ``true``/``false``, floats to 6 significant digits."""
    value = python_value(value)
    if value is None:
        return UNSET
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
