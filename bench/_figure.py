"""What a figure is: named measures, each a ratio (or a bound) with its target, and notes.

A figure module's ``run(quick)`` returns one :class:`Figure` per repeat; :func:`summarize`
folds the repeats into min/median/max per measure and judges the median against its target.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from enum import Enum


class Goal(Enum):
    """How a measured value must compare with its bound."""

    AT_MOST = "<="
    AT_LEAST = ">="
    BELOW = "<"


class Verdict(Enum):
    """Whether a measure met its target (``info`` measures have none)."""

    PASS = "pass"
    MISS = "miss"
    INFO = "info"


@dataclass(frozen=True)
class Target:
    """A bound a measure should stay on the right side of, e.g. ``<= 1.3``."""

    goal: Goal
    bound: float

    def met(self, value: float) -> bool:
        """Whether ``value`` is on the right side of the bound."""
        if self.goal is Goal.AT_MOST:
            return value <= self.bound
        if self.goal is Goal.AT_LEAST:
            return value >= self.bound
        return value < self.bound

    def __str__(self) -> str:
        return f"{self.goal.value} {self.bound:g}"


def at_most(bound: float) -> Target:
    """Target ``<= bound``."""
    return Target(Goal.AT_MOST, bound)


def at_least(bound: float) -> Target:
    """Target ``>= bound``."""
    return Target(Goal.AT_LEAST, bound)


def below(bound: float) -> Target:
    """Target ``< bound``."""
    return Target(Goal.BELOW, bound)


@dataclass(frozen=True)
class Measure:
    """One number of a figure: a ratio with a target, or an absolute value for information."""

    name: str  # what was measured, e.g. "abl / Tune(reuse_actors) per trial"
    value: float
    unit: str = "x"  # "x" for ratios, "s", "s/trial", "GiB", ...
    target: Target | None = None  # None: printed for information only


@dataclass
class Figure:
    """The outcome of one run of a figure."""

    name: str  # registry name, e.g. "overhead"
    title: str  # one line: what it compares
    measures: list[Measure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how it was run, what was skipped and why
    skipped: str | None = None  # the whole figure did not run: why

    def add(
        self, name: str, value: float, unit: str = "x", target: Target | None = None
    ) -> Measure:
        """Append a measure and return it."""
        measure = Measure(name, float(value), unit, target)
        self.measures.append(measure)
        return measure


@dataclass(frozen=True)
class Summary:
    """A measure over every repeat: min, median and max, judged on the median."""

    name: str
    unit: str
    values: tuple[float, ...]
    target: Target | None

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    @property
    def verdict(self) -> Verdict:
        if self.target is None:
            return Verdict.INFO
        return Verdict.PASS if self.target.met(self.median) else Verdict.MISS


def summarize(runs: list[Figure]) -> list[Summary]:
    """Fold the repeats of one figure into a summary per measure, in first-seen order."""
    values: dict[str, list[float]] = {}
    first: dict[str, Measure] = {}
    for run in runs:
        for m in run.measures:
            values.setdefault(m.name, []).append(m.value)
            first.setdefault(m.name, m)
    return [
        Summary(name, first[name].unit, tuple(vals), first[name].target)
        for name, vals in values.items()
    ]
