"""The report's first section: what the sweep answers, and what makes its ranking untrustworthy.

In reading order: a ranking metric that non-causal arms can cheat on; a ranking metric that
never left its initial value; "no ablation effect detectable at this budget" when the metric is
constant or every difference is inside seed noise; then one sentence per ablation axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from abl.results._design import label
from abl.results._doc import Block, Bullets, Cell, Heading, Para, Table
from abl.results.comparisons import ALPHA, Comparisons
from abl.results.run import RunData
from abl.trainables.metrics import metric_info

CAUSAL_KEY = "model.is_causal"
SAFE_EXAMPLE = "val/loss_last"  # named when the run records no metric that cannot peek


@dataclass(frozen=True)
class Verdict:
    """What the report states at the top (see :func:`judge`)."""

    leak: str | None  # the leaky-metric warning
    stuck: str | None  # the metric never moved from its first report
    no_effect: str | None  # "no ablation effect detectable ...", with the reason
    f_p: float | None  # p of the F-test of configuration means against seed variance

    @property
    def noise(self) -> bool:
        """True when the importance table below ranks noise."""
        return self.no_effect is not None


def judge(
    run: RunData,
    ok: pd.DataFrame,
    metric: str,
    comparisons: Comparisons | None,
    f_p: float | None,
) -> Verdict:
    """The verdict on a run's completed trials ``ok``."""
    return Verdict(
        leak=leak_warning(run, metric),
        stuck=stuck_warning(run, ok, metric),
        no_effect=_no_effect(ok, metric, comparisons, f_p),
        f_p=f_p,
    )


def leak_warning(run: RunData, metric: str) -> str | None:
    """A warning when ``metric`` lets a model without a causal mask see its targets and some
    trial ran without one."""
    info = metric_info(metric)
    if info is None or not info.peeks_without_causal_mask or CAUSAL_KEY not in run.trials:
        return None
    if not run.trials[CAUSAL_KEY].map(_is_false).any():
        return None
    safe = [
        m
        for m in run.metrics
        if (i := metric_info(m)) is not None
        and i.mode is not None
        and not i.peeks_without_causal_mask
    ]
    fix = (
        "rank by " + " or ".join(f"`{m}`" for m in safe) + f" (`abl report RUN --metric {safe[0]}`)"
        if safe
        else f"rank by a metric no arm can peek at, such as `{SAFE_EXAMPLE}` (not recorded here)"
    )
    return (
        f"**`{metric}` lets non-causal arms see their targets** (some trials ran with "
        f"`{CAUSAL_KEY}` = false, and `{metric}` scores positions whose next-step target is "
        f"inside the window): its ranking of causal against non-causal arms is not a result; {fix}."
    )


def _is_false(value: object) -> bool:
    return (
        value is False
        or (isinstance(value, (np.bool_,)) and not value)
        or str(value).lower() == "false"
    )


def stuck_warning(run: RunData, ok: pd.DataFrame, metric: str) -> str | None:
    """A warning when the metric's first and last reports are equal in completed trials
    (history.parquet; trials with a single report cannot tell and are left out)."""
    ids = ok["trial_id"].astype(str).tolist()
    if not ids:
        return None
    history = run.history(None, [metric])
    history = history[history["trial_id"].isin(set(ids))].dropna(subset=[metric])
    if history.empty:
        return None
    ends = (
        history.sort_values(["trial_id", "step"], kind="stable")
        .groupby("trial_id")[metric]
        .agg(["first", "last", "count"])
    )
    ends = ends[ends["count"] > 1]
    if ends.empty:
        return None
    same = np.isclose(ends["first"].astype(float), ends["last"].astype(float), rtol=1e-6, atol=0)
    n, stuck = len(ends), int(same.sum())
    if stuck == 0:
        return None
    if stuck == n:
        return (
            f"**`{metric}` never left its initial value**: in every one of {n} trials its last "
            "report equals its first. The budget is too small to show anything; what follows "
            "ranks noise."
        )
    return (
        f"`{metric}` never left its initial value in {stuck} of {n} trials (first report = last)."
    )


def _no_effect(
    ok: pd.DataFrame, metric: str, comparisons: Comparisons | None, f_p: float | None
) -> str | None:
    y = ok[metric].astype(float) if len(ok) else pd.Series(dtype=float)
    if len(y) > 1 and np.ptp(y.to_numpy()) == 0:
        return f"`{metric}` is {y.iloc[0]:.4g} in every one of {len(y)} completed trials"
    if comparisons is None or not comparisons.tested or comparisons.any_significant:
        return None
    if f_p is not None and f_p < ALPHA:
        return None
    n = len(comparisons.tested)
    why = f"no pair of values of any axis differs after Holm's correction ({n} pairs)"
    if f_p is not None:
        why += f", and the configurations' means are inside their seed noise (F-test p={f_p:.2f})"
    if comparisons.replicates == "cells":
        why += "; no configuration ran twice, so seed noise itself is unknown"
    return why


def section(v: Verdict, comparisons: Comparisons | None, mode: str) -> list[Block]:
    """The Verdict section: warnings, the no-effect statement, one sentence per axis."""
    items = [w for w in (v.leak, v.stuck) if w]
    if v.no_effect:
        items.append(f"**No ablation effect detectable at this budget**: {v.no_effect}.")
    elif (
        comparisons is not None
        and comparisons.tested
        and not comparisons.any_significant
        and v.f_p is not None
        and v.f_p < ALPHA
    ):
        items.append(
            "No value of any axis is better on average, but the configurations differ beyond "
            f"seed noise (F-test p={v.f_p:.2g}): what matters is a combination of values "
            "(see the interactions under Which parameters matter)."
        )
    axes = comparisons.axes if comparisons is not None else []
    if not items and not axes:
        return []
    blocks: list[Block] = [Heading("Verdict")]
    blocks += [Bullets(items)] if items else []
    if axes and comparisons is not None:
        better = "lower" if mode == "min" else "higher"
        op = "<" if mode == "min" else ">"
        how = (
            "seeds as replicates, paired by seed where both values ran the same seeds"
            if comparisons.replicates == "seeds"
            else "no configuration ran twice, so the matched cells are the replicates and seed "
            "noise is not measured"
        )
        if comparisons.unmatched:
            names = ", ".join(f"`{p}`" for p in comparisons.unmatched)
            how += f"; {names} vary within cells and count as noise"
        n = len(comparisons.tested)
        holm = (
            f"Holm-corrected over all {n} tested pairs"
            if n > 1
            else ("one pair, so no correction" if n == 1 else "no pair had the trials a test needs")
        )
        blocks.append(
            Para(
                f"Each axis's values compared matched on the other axes ({how}); {holm}; "
                f"`a {op} b`: a has the {better} `{comparisons.metric}` (better); g is Hedges' g "
                "in within-cell seed SDs."
            )
        )
        blocks.append(Bullets([_axis_line(a.axis, a.sentence, v) for a in axes]))
        blocks += [_table(comparisons)] if comparisons.tested else []
    return blocks


def _axis_line(axis: str, sentence: str, v: Verdict) -> str:
    """An axis's sentence, marked when a leaky metric decides it."""
    if v.leak and axis == CAUSAL_KEY:
        return sentence + " **Not a result: the metric leaks for non-causal arms (above).**"
    return sentence


def _table(c: Comparisons) -> Table:
    head = ["axis", "A", "B", f"A - B ({c.metric})", "g", "p", "Holm p", "test", "cells × seeds"]
    rows = []
    for p in c.tested:
        rows.append(
            [
                Cell(p.axis),
                Cell(label(p.a), bold=p.significant),
                Cell(label(p.b)),
                Cell(f"{p.diff:.4g}", numeric=True),
                Cell("" if math.isnan(p.g) else f"{abs(p.g):.3g}", numeric=True),
                Cell(_p(p.p), numeric=True),
                Cell(_p(p.p_holm), numeric=True, bold=p.significant),
                Cell(p.kind.value),
                Cell(f"{p.cells} × {p.seeds}", numeric=True),
            ]
        )
    return Table(head, rows)


def _p(p: float) -> str:
    return "" if not math.isfinite(p) else "<0.001" if p < 0.001 else f"{p:.3g}"
