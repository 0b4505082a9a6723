"""What a space's ``trainable:`` names, as the search layer sees it: one interface.

A registered trainable (:class:`~abl.trainables.spec.TrainableSpec`: a task, its models, the
shared loop) and a user's function (``trainable: pkg.mod:fn``, :class:`FunctionTrainable`)
both implement :class:`Trainable`, so nothing above asks which one it has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from abl.errors import AblError
from abl.trainables.command import Command, CommandTrainable


@dataclass(frozen=True)
class TrialContext:
    """Where a trial runs: its folder in the run directory (the same across retries and
    resumes) and the sweep's metric, which Ray Tune wants in a trial's first report."""

    dir: Path
    metric: str


class Trainable(Protocol):
    """A trainable of a space: how its trial configs are completed, checked and run."""

    name: str

    def resolve(self, given: dict[str, Any], where: str) -> dict[str, Any]:
        """The full flat trial config for ``given`` (checked; ``where`` names the source)."""
        ...

    def trial_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` less the keys Tune filled with None that this trial does not take."""
        ...

    def metrics(self) -> tuple[str, ...] | None:
        """Every metric a trial reports; None when only its first report will tell."""
        ...

    def preflight(self, configs: Sequence[dict[str, Any]]) -> None:
        """Build what each distinct config builds (models on the meta device), or raise."""
        ...

    def run(self, config: dict[str, Any], trial: TrialContext) -> None:
        """Train one trial inside a Ray Tune function trainable (it calls ``tune.report``)."""
        ...

    def restart_lines(self, trials_dir: Path, trial_ids: Sequence[str]) -> list[str]:
        """What to tell the user of trials that run again on ``--resume`` (none: Tune restores
        them from their checkpoints)."""
        ...


@dataclass(frozen=True)
class FunctionTrainable:
    """A Ray Tune function named by import path; its config keys pass through unchecked."""

    name: str
    function: Callable[[dict[str, Any]], Any]

    def resolve(self, given: dict[str, Any], where: str) -> dict[str, Any]:
        return dict(given)

    def trial_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return config

    def metrics(self) -> tuple[str, ...] | None:
        return None

    def preflight(self, configs: Sequence[dict[str, Any]]) -> None:
        return None

    def run(self, config: dict[str, Any], trial: TrialContext) -> None:
        self.function(config)

    def restart_lines(self, trials_dir: Path, trial_ids: Sequence[str]) -> list[str]:
        return []


def lookup(name: str | Command) -> Trainable:
    """The trainable registered as ``name``, the function ``package.module:fn`` names, or the
    user's own command."""
    from abl.trainables.spec import TRAINABLES, TrainableSpec

    if isinstance(name, Command):
        return CommandTrainable(name)
    obj = TRAINABLES.get(name)
    if isinstance(obj, TrainableSpec):
        return obj
    if callable(obj):
        return FunctionTrainable(name, obj)
    raise AblError(f"trainable '{name}' is neither a registered trainable nor a function")
