"""Step-scheduled curricula: a value that grows from ``start`` to ``end`` by ``inc`` every ``interval`` steps.

The schedule of the logbooks' Hydra configs (``curriculum.dims: {start, end, inc, interval}``),
shared by tasks (dims, points, sequence length) and models (loop counts).
"""

from __future__ import annotations

from dataclasses import dataclass

from abl.errors import AblError


@dataclass(frozen=True)
class Schedule:
    """``value(step) = min(end, start + inc * (step // interval))`` (or max, when counting down)."""

    start: int
    end: int
    inc: int = 1
    interval: int = 1

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise AblError(f"a curriculum interval must be >= 1 step; got {self.interval}")
        if self.inc == 0 and self.start != self.end:
            raise AblError(f"a curriculum from {self.start} to {self.end} needs inc != 0")
        if (self.end - self.start) * self.inc < 0:
            raise AblError(
                f"a curriculum from {self.start} to {self.end} cannot move by inc {self.inc}"
            )

    def value(self, step: int) -> int:
        """The scheduled value at optimizer step ``step`` (0-based)."""
        raw = self.start + self.inc * (step // self.interval)
        return min(raw, self.end) if self.inc >= 0 else max(raw, self.end)
