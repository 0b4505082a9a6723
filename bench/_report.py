"""RESULTS.md: the machine, then each figure's measures as min/median/max with target and verdict."""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from bench._figure import Figure, Summary, Verdict, summarize


@dataclass
class FigureResult:
    """Every repeat of one figure, or why it did not run."""

    name: str
    title: str
    runs: list[Figure] = field(default_factory=list)
    seconds: float = 0.0  # wall time of all its repeats
    error: str | None = None  # the figure raised: its message

    @property
    def skipped(self) -> str | None:
        return next((r.skipped for r in self.runs if r.skipped), None)

    @property
    def notes(self) -> list[str]:
        return list(dict.fromkeys(n for r in self.runs for n in r.notes))

    def summaries(self) -> list[Summary]:
        return summarize(self.runs)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """Cores, CPU model, memory, Python, torch and ray versions, and the date."""
    import ray
    import torch

    info = {
        "cores": str(os.cpu_count()),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }
    try:
        load = os.getloadavg()
        info["load average at start"] = ", ".join(f"{x:.2f}" for x in load)
    except OSError:
        pass
    return info


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def verdict_of(result: FigureResult) -> str:
    """``pass``, ``miss (k of n)``, ``skipped``, ``errored`` or ``info`` for a whole figure."""
    if result.error:
        return "errored"
    if result.skipped:
        return "skipped"
    judged = [s for s in result.summaries() if s.verdict is not Verdict.INFO]
    missed = [s for s in judged if s.verdict is Verdict.MISS]
    if not judged:
        return "info"
    return f"miss ({len(missed)} of {len(judged)})" if missed else "pass"


def figure_section(result: FigureResult) -> list[str]:
    """The markdown section of one figure."""
    lines = [f"## {result.name}", "", result.title, ""]
    if result.error:
        return [*lines, f"**errored**: {result.error}", ""]
    if result.skipped:
        return [*lines, f"**skipped**: {result.skipped}", ""]
    lines += [
        f"{len(result.runs)} repeat(s), {result.seconds:.0f} s in all.",
        "",
        "| measure | min | median | max | target | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    for s in result.summaries():
        unit = f" {s.unit}" if s.unit not in ("x", "") else ""
        target = f"{s.target}{unit}" if s.target else ""
        lines.append(
            f"| {s.name} | {_num(s.low)} | {_num(s.median)}{unit} | {_num(s.high)} "
            f"| {target} | {s.verdict.value} |"
        )
    if result.notes:
        lines += ["", *(f"- {n}" for n in result.notes)]
    return [*lines, ""]


def render(results: list[FigureResult], info: dict[str, str], command: str) -> str:
    """The whole RESULTS.md."""
    lines = [
        "# abl benchmarks",
        "",
        f"`{command}`: every figure is a ratio of two things measured side by side in one run;",
        "absolute seconds are for information. A figure passes when the median over its",
        "repeats meets its target.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in info.items()),
        "",
        "| figure | result | seconds |",
        "|---|---|---:|",
        *(f"| [{r.name}](#{r.name}) | {verdict_of(r)} | {r.seconds:.0f} |" for r in results),
        "",
    ]
    for result in results:
        lines += figure_section(result)
    return "\n".join(lines)
