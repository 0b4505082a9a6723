"""Terminal tables shared by commands."""

from __future__ import annotations

import math
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from abl.space.schema import Space


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """``abl top | head`` closed the pipe: what was read was asked for, so exit 0 (rich: 1)."""
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0)


def terminal() -> Console:
    """A console on stdout; wide when it is a file or a pipe, so tables are never cut."""
    console = _Console()
    return console if console.is_terminal else _Console(width=max(console.width, 240))


def varying_keys(space: Space) -> list[str]:
    """The trial parameters a space varies (what a table of its trials should show)."""
    return space.sweep_keys()


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def top_table(trials: Any, space: Space, *, k: int = 10) -> Table:
    """The best ``k`` trials of a trials table (pyarrow), ranked by the space's metric."""
    rows = trials.to_pylist()
    metric = space.metric
    sign = 1 if space.mode == "min" else -1

    def rank(row: dict[str, Any]) -> tuple[int, float]:
        value = row.get(metric)
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        return (0, sign * value) if ok else (1, 0.0)

    rows.sort(key=rank)
    metrics = [
        metric,
        *sorted(
            {
                c
                for c in trials.column_names
                if "/" in c and c != metric and c.split("/")[0] in ("train", "val", "predict")
            }
        ),
    ]
    keys = [key for key in varying_keys(space) if key in trials.column_names]
    table = Table(
        "trial",
        "status",
        *keys,
        *metrics,
        title=f"top {min(k, len(rows))} of {len(rows)} by {metric} ({space.mode})",
    )
    for row in rows[:k]:
        table.add_row(row["trial_id"], row["status"], *(fmt(row.get(c)) for c in keys + metrics))
    return table


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """What a report concludes, in a few terminal lines (``abl report`` and the end of
    ``abl search``): the verdict, a sentence per ablation axis, importance with its seed
    interval and F-test p."""
    lines = []
    verdict = summary.get("verdict") or {}
    if verdict.get("leaky_metric"):
        lines.append(
            f"verdict  {summary.get('metric')} lets non-causal arms see their targets: its "
            "causal vs non-causal ranking is not a result (see the report)"
        )
    if verdict.get("metric_never_moved"):  # in every trial, or in some: the report's words
        lines.append("verdict  " + verdict["metric_never_moved"].replace("*", "").replace("`", ""))
    if verdict.get("no_effect_detectable"):
        lines.append(f"verdict  no ablation effect detectable at this budget: {verdict.get('why')}")
    seeds = summary.get("seeds")
    if seeds:
        lines.append(
            f"seeds    {seeds['trials']} trials of at most {seeds['most']} "
            f"({seeds['min']} to {seeds['max']} seeds each): {seeds['decided']} comparisons "
            f"decided, {seeds.get('futile', 0)} stopped as not distinguishable, "
            f"{seeds['open']} still open (report: Seeds)"
        )
        lines += ["  " + _decided(d) for d in seeds["decisions"]]
    # With adaptive seeds the per-axis sentences' fixed-sample tests are not the valid ones.
    for axis in [] if seeds else (summary.get("comparisons") or {}).get("axes", []):
        lines.append("  " + axis["sentence"].replace("`", ""))
    for group, results in summary["groups"].items():
        for result in results[:2]:
            shown = []
            tests = {t["term"]: t["p"] for t in result.get("ftests", [])}
            for param, score in list(result["scores"].items())[:3]:
                text = f"{param} {100 * (score or 0):.0f}%"
                low_high = (result.get("intervals") or {}).get(param)
                if low_high and None not in low_high:
                    text += f" [{100 * low_high[0]:.0f}, {100 * low_high[1]:.0f}]"
                if param in tests and tests[param] is not None:
                    p = tests[param]
                    text += " (p<0.001)" if p < 0.001 else f" (p={p:.2g})"
                shown.append(text)
            where = "" if group == "all" else f" [{group}]"
            lines.append(f"{result['method']:>9}{where}: {', '.join(shown)}")
    for group, reason in summary["skipped"].items():
        lines.append(
            f"importance{'' if group == 'all' else f' [{group}]'}: nothing to decompose ({reason})"
        )
    tuned = summary.get("tuned")
    if tuned and tuned["arms"]:
        changed = {True: "changed", False: "did not change", None: "unknown"}
        lines.append(
            f"    tuned: {tuned['arms'][0]['name']} ranks first; tuning per arm "
            f"{changed[tuned['conclusion_changed']]} the conclusion"
        )
    return lines


def _decided(d: dict[str, Any]) -> str:
    """One adaptive-seeds decision of importance.json in a terminal line."""
    where = f"{d['axis']}: " if d.get("axis") else ""
    verdict, a, b = d["verdict"], d["a"], d["b"]
    if verdict == "open":
        return f"{where}{a} vs {b} still open at {d['n']} matched pairs"
    p = d.get("p_holm")
    how = f"Holm p={p:.2g}" if isinstance(p, float) else ""
    if verdict == "equivalent":
        return f"{where}{a} ~ {b}, a tie within the margin ({how})"
    if verdict == "futile":
        return f"{where}{a} vs {b} not distinguishable (stopped at {d['n']} matched pairs)"
    if verdict not in ("a", "b"):
        return f"{where}{a} vs {b}: {verdict} at {d['n']} matched pairs"
    better, worse = (a, b) if verdict == "a" else (b, a)
    return f"{where}{better} better than {worse} ({how}, {d['n']} matched pairs)"
