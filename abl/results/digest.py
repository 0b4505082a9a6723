"""Nightly regressions: one run compared with the previous nightly of the same space.

    abl nightly cluster/nightly.yaml

:func:`compare_nightly` matches the two runs' arms (configurations, seeds averaged) and checks
the :class:`Rules`: an arm's mean (or the best arm's) worse by more than a percentage or by more
than k seed standard deviations, the top configuration changed, the importance ranking's leader
changed. :func:`write_digest` renders every space's verdict as ``digest.md``, a self-contained
``digest.html`` and ``digest.json``::

    from abl.results.digest import Rules, compare_nightly, write_digest

    d = compare_nightly(Path("abl-runs/q/2025-04-21_02-00-00"), Path("abl-runs/q/2025-04-22_02-00-00"), Rules())
    print([f.message for f in d.findings])
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from abl.errors import one_of
from abl.results._design import label
from abl.results._doc import Block, Bullets, Cell, Heading, Para, Table, to_html, to_markdown
from abl.results.aggregate import aggregate_repeats, split_trials
from abl.results.importance import IMPORTANCE_METHODS, compute_importance
from abl.results.run import RunData, load_run

DIGEST_MD, DIGEST_HTML, DIGEST_JSON = "digest.md", "digest.html", "digest.json"
BEST = "(best arm)"  # the arm label of the best-of-run comparison


class Rules(BaseModel):
    """Regression rules of one space (``rules:`` of ``cluster/nightly.yaml``); None turns one off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str | None = None  # the metric compared; None: the space's
    regression_pct: Annotated[float, Field(ge=0)] | None = 5.0  # worse by more than this % fires
    regression_std: Annotated[float, Field(ge=0)] | None = 3.0  # or by more than k seed std
    top_changed: bool = True  # the best configuration (by mean over seeds) is another one
    importance_flip: bool = True  # the most important parameter is another one
    importance_method: str = "anova"  # one of IMPORTANCE_METHODS, used for both runs

    @field_validator("importance_method")
    @classmethod
    def _known_method(cls, name: str) -> str:
        if name not in IMPORTANCE_METHODS:
            raise ValueError(f"must be one of {one_of(IMPORTANCE_METHODS)}")
        return name


class Rule(str, Enum):
    """What a finding is about; each is a reason for ``abl nightly`` to exit 1."""

    REGRESSION = "regression"
    TOP_CHANGED = "top_changed"
    IMPORTANCE_FLIP = "importance_flip"
    SWEEP_FAILED = "sweep_failed"


@dataclass(frozen=True)
class Finding:
    """A rule that fired, in one line naming the space's arm, parameter or error."""

    rule: Rule
    message: str


@dataclass
class SpaceDigest:
    """One space's nightly verdict (see :func:`compare_nightly`)."""

    name: str
    run_dir: Path | None  # this nightly's run; None when the sweep did not start
    previous: Path | None  # the previous nightly's run; None for the first (the baseline)
    metric: str = ""
    mode: str = "min"
    arms: pd.DataFrame = field(default_factory=pd.DataFrame)  # see arm_changes()
    findings: list[Finding] = field(default_factory=list)  # the rules that fired
    notes: list[str] = field(default_factory=list)  # what was not checked, and why

    @property
    def fired(self) -> bool:
        """True when any rule fired for this space."""
        return bool(self.findings)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: runs, findings, notes and the arm table (NaN becomes null)."""
        arms = self.arms.astype(object).where(self.arms.notna(), None)
        return {
            "name": self.name,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "previous": str(self.previous) if self.previous else None,
            "metric": self.metric,
            "mode": self.mode,
            "fired": self.fired,
            "findings": [{"rule": f.rule.value, "message": f.message} for f in self.findings],
            "notes": self.notes,
            "arms": arms.to_dict(orient="records"),
        }


def failed_digest(
    name: str, run_dir: Path | None, previous: Path | None, error: str
) -> SpaceDigest:
    """The digest of a space whose sweep (or comparison) raised: ``sweep_failed`` fires."""
    return SpaceDigest(
        name, run_dir, previous, findings=[Finding(Rule.SWEEP_FAILED, f"failed: {error}")]
    )


def compare_nightly(previous: Path | None, current: Path, rules: Rules) -> SpaceDigest:
    """Check ``rules`` on run ``current`` against run ``previous`` (None: nothing to compare).

    >>> d = compare_nightly(prev_dir, run_dir, Rules(regression_pct=10))  # doctest: +SKIP
    >>> d.fired, [f.message for f in d.findings]  # doctest: +SKIP
    """
    cur = load_run(current)
    metric = cur.check_metric(rules.metric)
    mode = cur.mode_of(metric)
    digest = SpaceDigest(cur.space.name, cur.run_dir, previous, metric, mode)
    if split_trials(cur.trials, metric).ok.empty:
        digest.findings.append(
            Finding(Rule.SWEEP_FAILED, f"no trial completed with a finite {metric}")
        )
        return digest
    if previous is None:
        digest.notes.append("first nightly of this space: it is the baseline of the next one")
        return digest
    prev = load_run(previous)
    if metric not in prev.metrics or split_trials(prev.trials, metric).ok.empty:
        digest.notes.append(f"the previous nightly has no completed trial with {metric}")
        return digest
    params = [p for p in cur.params if p in prev.params]
    if set(params) != set(cur.params) or set(params) != set(prev.params):
        digest.notes.append(
            f"the swept parameters changed ({', '.join(prev.params) or 'none'} -> "
            f"{', '.join(cur.params) or 'none'}); arms are compared on {', '.join(params) or 'none'}"
        )
    digest.arms = arm_changes(prev.trials, cur.trials, params, metric, mode)
    digest.findings += regressions(digest.arms, metric, rules)
    if rules.top_changed:
        digest.findings += top_change(prev.trials, cur.trials, params, metric, mode)
    if rules.importance_flip:
        flip, note = importance_flip(prev, cur, params, metric, mode, rules.importance_method)
        digest.findings += flip
        digest.notes += note
    return digest


def arm_label(row: pd.Series, params: Sequence[str]) -> str:
    """``a=1 b=rope`` for an arm; ``(all trials)`` when nothing varies."""
    return " ".join(f"{p}={label(row[p])}" for p in params) or "(all trials)"


def _arms(trials: pd.DataFrame, params: Sequence[str], metric: str, mode: str) -> pd.DataFrame:
    table = aggregate_repeats(trials, params, metric, mode).table
    table.index = [arm_label(row, params) for _, row in table.iterrows()]
    return table[["mean", "std", "n"]]


def arm_changes(
    prev: pd.DataFrame, cur: pd.DataFrame, params: Sequence[str], metric: str, mode: str
) -> pd.DataFrame:
    """Every arm of either run, plus the best arm of each, previous vs current.

    Columns: ``arm``, ``prev_mean``, ``prev_std``, ``prev_n``, ``mean``, ``std``, ``n``,
    ``change`` (current - previous), ``worse_pct`` and ``worse_std`` (how much worse, in % of
    the previous mean and in pooled seed standard deviations; negative is better, NaN where
    an arm ran only once or is missing from one run). Current order, best first.
    """
    a, b = _arms(prev, params, metric, mode), _arms(cur, params, metric, mode)
    table = b.join(a.add_prefix("prev_"), how="outer")
    order = [*b.index, *(i for i in a.index if i not in b.index)]
    table = table.loc[order]
    best = pd.DataFrame(
        [{**b.iloc[0].to_dict(), **a.iloc[0].add_prefix("prev_").to_dict()}], index=[BEST]
    )
    table = pd.concat([best, table])
    sign = 1.0 if mode == "min" else -1.0
    table["change"] = table["mean"] - table["prev_mean"]
    with np.errstate(invalid="ignore", divide="ignore"):
        table["worse_pct"] = 100 * sign * table["change"] / table["prev_mean"].abs()
        table["worse_std"] = sign * table["change"] / pooled_std(table["prev_std"], table["std"])
    table = table.rename_axis("arm").reset_index()
    return table[
        [
            "arm",
            "prev_mean",
            "prev_std",
            "prev_n",
            "mean",
            "std",
            "n",
            "change",
            "worse_pct",
            "worse_std",
        ]
    ]


def pooled_std(a: pd.Series, b: pd.Series) -> pd.Series:
    """sqrt of the mean of the two variances; one alone where the other is NaN; NaN for 0."""
    var = pd.concat([a**2, b**2], axis=1).mean(axis=1, skipna=True)
    return np.sqrt(var.where(var > 0))


def regressions(arms: pd.DataFrame, metric: str, rules: Rules) -> list[Finding]:
    """An arm (or the best arm) worse than the thresholds allow, or an arm that lost its results."""
    out = []
    for _, row in arms.iterrows():
        if math.isnan(row["mean"]) and not math.isnan(row["prev_mean"]) and row["arm"] != BEST:
            out.append(
                Finding(
                    Rule.REGRESSION,
                    f"{row['arm']}: no completed trial now ({metric} was {row['prev_mean']:.4g})",
                )
            )
            continue
        over = []
        if rules.regression_pct is not None and row["worse_pct"] > rules.regression_pct:
            over.append(f"> {rules.regression_pct:g}%")
        if rules.regression_std is not None and row["worse_std"] > rules.regression_std:
            over.append(f"> {rules.regression_std:g} seed std")
        if over:
            out.append(
                Finding(
                    Rule.REGRESSION, f"{row['arm']}: {metric} {_change(row)} ({' and '.join(over)})"
                )
            )
    return out


def _change(row: pd.Series) -> str:
    std = "" if math.isnan(row["worse_std"]) else f", {row['worse_std']:+.1f} seed std"
    return f"{row['prev_mean']:.4g} -> {row['mean']:.4g} ({row['worse_pct']:+.1f}% worse{std})"


def top_change(
    prev: pd.DataFrame, cur: pd.DataFrame, params: Sequence[str], metric: str, mode: str
) -> list[Finding]:
    """The best arm by mean over seeds is another configuration than last time."""
    if not params:
        return []
    before, now = (
        _arms(prev, params, metric, mode).index[0],
        _arms(cur, params, metric, mode).index[0],
    )
    if before == now:
        return []
    return [Finding(Rule.TOP_CHANGED, f"top configuration changed: {before} -> {now}")]


def importance_flip(
    prev: RunData, cur: RunData, params: Sequence[str], metric: str, mode: str, method: str
) -> tuple[list[Finding], list[str]]:
    """The most important parameter (by ``method``) is another one than last time.

    Returns ``(findings, notes)``; a note says why the rule could not be checked.
    """
    rankings = []
    for run in (prev, cur):
        imp = compute_importance(run.trials, params, metric, mode, methods=[method])
        results = imp.groups.get("all")
        if not results or len(results[0].scores) < 2:
            why = imp.skipped.get("all", "fewer than two parameters vary")
            return [], [f"importance not compared ({run.run_dir.name}: {why})"]
        rankings.append(results[0].ranking())
    before, now = rankings
    if before[0] == now[0]:
        return [], []
    return [
        Finding(
            Rule.IMPORTANCE_FLIP,
            f"importance ranking flipped ({method}): {' > '.join(before)} -> {' > '.join(now)}",
        )
    ], []


@dataclass(frozen=True)
class DigestPaths:
    """What :func:`write_digest` wrote."""

    markdown: Path
    html: Path
    json: Path

    def files(self) -> list[Path]:
        """Every file written, e.g. to log as MLflow artifacts."""
        return [self.markdown, self.html, self.json]


def write_digest(digests: Sequence[SpaceDigest], out_dir: Path, *, title: str) -> DigestPaths:
    """Write ``digest.md``, ``digest.html`` and ``digest.json`` of ``digests`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = digest_blocks(digests, title=title)
    paths = DigestPaths(out_dir / DIGEST_MD, out_dir / DIGEST_HTML, out_dir / DIGEST_JSON)
    paths.markdown.write_text(to_markdown(blocks), encoding="utf-8")
    paths.html.write_text(to_html(blocks, title=title, base=out_dir), encoding="utf-8")
    data = {
        "title": title,
        "fired": any(d.fired for d in digests),
        "spaces": [d.to_json() for d in digests],
    }
    paths.json.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return paths


def digest_blocks(digests: Sequence[SpaceDigest], *, title: str) -> list[Block]:
    """The digest as report blocks: a verdict table, then every space's findings and arms."""
    found = sum(len(d.findings) for d in digests)
    verdict = f"{found} finding{'s' if found != 1 else ''}" if found else "all clear"
    blocks: list[Block] = [Heading(f"{title}: {verdict}", 1)]
    rows = [
        [
            Cell(d.name),
            Cell("fired" if d.fired else "ok", bold=d.fired),
            Cell(_where(d.run_dir)),
            Cell(_where(d.previous)),
        ]
        for d in digests
    ]
    blocks.append(Table(["space", "verdict", "run", "previous nightly"], rows))
    for d in digests:
        blocks.append(Heading(d.name))
        if d.findings:
            blocks.append(Bullets([f"**{f.rule.value}**: {f.message}" for f in d.findings]))
        else:
            blocks.append(Para("No rule fired."))
        if d.notes:
            blocks.append(Bullets(d.notes))
        if not d.arms.empty:
            blocks.append(_arm_table(d))
    return blocks


def _where(path: Path | None) -> str:
    return str(path) if path else "none"


def _arm_table(d: SpaceDigest) -> Table:
    def num(value: Any, spec: str = ".4g") -> Cell:
        ok = value is not None and not (isinstance(value, float) and math.isnan(value))
        return Cell(format(value, spec) if ok else "", numeric=True)

    rows = [
        [
            Cell(row["arm"], bold=row["arm"] == BEST),
            num(row["prev_mean"]),
            num(row["mean"]),
            num(row["std"]),
            num(row["n"], ".0f"),
            num(row["worse_pct"], "+.1f"),
            num(row["worse_std"], "+.1f"),
        ]
        for _, row in d.arms.iterrows()
    ]
    header = [
        "arm",
        f"previous {d.metric}",
        f"now {d.metric}",
        "std",
        "n",
        "worse %",
        "worse (seed std)",
    ]
    return Table(header, rows)
