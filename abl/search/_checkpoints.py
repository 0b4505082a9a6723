"""Checkpoints Tune's experiment snapshot names but that are gone (imported only with Ray).

Tune keeps ``num_to_keep`` checkpoints per trial and deletes an older one as soon as it
registers a newer one; the experiment snapshot that names the newer one is written later.
A driver killed in between leaves a snapshot naming a deleted checkpoint, and Tune would then
error the trial for good on resume. :class:`CheckpointLedger` records every checkpoint when
it is registered, before Tune deletes the one before it; :func:`repair_checkpoints` points
such a trial at the newest recorded checkpoint left on disk before ``Tuner.restore``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ray.tune import Callback

from abl.rundir import CHECKPOINT_LEDGER, TUNE_DIR
from abl.search.raycompat import Snapshot

RESULTS_FILE = "result.json"  # Tune's JSON logger's, synced with the snapshot


class CheckpointLedger(Callback):
    """Append the report that carried each checkpoint to ``<trial>/abl-checkpoints.jsonl``.

    Tune calls ``on_checkpoint`` once the checkpoint is stored and before it deletes the one
    before it, so a checkpoint the ledger names is complete. Tune's own ``result.json`` says
    the same but reaches the run directory only with the snapshot, too late for this.
    """

    def on_checkpoint(
        self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any
    ) -> None:
        """One JSON line: the trial's last result, which carried ``checkpoint``."""
        result = dict(trial.last_result or {})
        path = PurePosixPath(checkpoint.path)
        if result.get("checkpoint_dir_name") != path.name:
            return
        result.pop("config", None)  # in the trial's params.json
        try:
            if checkpoint.filesystem.type_name != "local":
                return  # a remote run directory: nothing to repair it from on this disk
            with open(Path(path.parent, CHECKPOINT_LEDGER), "a", encoding="utf-8") as ledger:
                ledger.write(json.dumps(result, default=str) + "\n")
        except Exception:  # a ledger that cannot be written must not stop the sweep
            return


@dataclass(frozen=True)
class CheckpointRepair:
    """A trial whose checkpoint in Tune's snapshot was gone, and what it resumes from instead."""

    trial_id: str
    lost: str  # the checkpoint folder the snapshot named
    found: str | None  # the newest complete one in the trial's folder; None: starts again
    step: int = 0  # the last step (epoch) ``found`` holds

    def line(self) -> str:
        """What the sweep prints about it, in one line."""
        gone = f"trial {self.trial_id}: {self.lost} is gone from storage"
        if self.found is None:
            return f"{gone} and no checkpoint is left; starts again from epoch 1"
        return f"{gone}; continues from {self.found}, saved at epoch {self.step}"


def repair_checkpoints(run_dir: Path, *, errored: bool = False) -> list[CheckpointRepair]:
    """Point every unfinished trial of Tune's newest snapshot at a checkpoint that exists.

    Tune prunes a trial's older checkpoint (``num_to_keep``) as soon as it registers a new
    one, and snapshots its experiment state only later: a driver killed in between leaves a
    snapshot whose checkpoint is gone, and Tune would then error the trial for good. Such a
    trial continues from the newest complete checkpoint in its folder (one that the
    :class:`CheckpointLedger` recorded), with the metrics of the report that carried it, so
    that Tune counts iterations from there; with none left it starts again. ``errored``:
    errored trials too (``--retry-errored``). Returns what was changed.

    Tune has no public API for a trial's checkpoints: :class:`abl.search.raycompat.Snapshot`
    edits the private objects pickled in the snapshot. A snapshot it cannot read is left as it is.
    """

    snapshot = None
    with contextlib.suppress(OSError, ValueError):
        snapshot = Snapshot.newest(run_dir / TUNE_DIR)
    if snapshot is None:
        return []
    skip = {"TERMINATED"} if errored else {"TERMINATED", "ERROR"}
    repairs: list[CheckpointRepair] = []
    for trial in snapshot.trials():
        try:
            if trial.status in skip or trial.checkpoint is None:
                continue
            # Where the run is now (Tune moves the saved paths there on restore).
            trial_dir = run_dir / TUNE_DIR / trial.trial_dir_name
            lost = PurePosixPath(trial.checkpoint).name
            if not trial_dir.is_dir() or (trial_dir / lost).is_dir():
                continue  # not on this machine's disk (cannot tell), or there
            found = _newest_checkpoint(trial_dir)
            # New checkpoints go to folders after every one present, never into one of them.
            present = [_checkpoint_index(p.name) for p in trial_dir.glob("checkpoint_*")]
            trial.repoint(found and found[0], found[1] if found else {}, max(present, default=-1))
        except Exception:  # not the snapshot Ray 2.60 writes: leave this trial as it is
            continue
        repairs.append(
            CheckpointRepair(
                str(trial.trial_id),
                lost,
                found and found[0],
                int(found[1].get("training_iteration") or 0) if found else 0,
            )
        )
    if repairs:
        snapshot.save()
    return repairs


def _checkpoint_index(name: str) -> int:
    """The index of ``checkpoint_000003`` (3); -1 for a name that is not Tune's."""
    index = name.removeprefix("checkpoint_")
    return int(index) if index.isdigit() else -1


def _newest_checkpoint(trial_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """The trial's newest checkpoint folder on disk that the ledger (or Tune's ``result.json``,
    synced with Tune's snapshot) names, with the report that carried it."""
    named: dict[str, dict[str, Any]] = {}
    for source in (RESULTS_FILE, CHECKPOINT_LEDGER):  # the ledger's line wins: it is the newer
        try:
            lines = (trial_dir / source).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in lines.splitlines():
            try:
                result = json.loads(line)
            except ValueError:  # the line being written when the driver died
                continue
            name = result.get("checkpoint_dir_name") if isinstance(result, dict) else None
            if isinstance(name, str) and name:
                named[name] = result
    present = [n for n in named if (trial_dir / n).is_dir() and any((trial_dir / n).iterdir())]
    if not present:
        return None
    newest = max(present, key=_checkpoint_index)
    return newest, named[newest]
