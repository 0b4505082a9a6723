"""Every use abl makes of Ray's private internals, behind one door (written against Ray 2.60).

Tune has no public API for what these do; each names what it works around.
tests/search/test_raycompat.py fails when Ray changes underneath one of them, and
pyproject.toml pins Ray's minor version for this module's sake. Importing it does not
import ray, and it imports nothing of abl's.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

# Loggers of Ray 2.60's private modules: Tune's snapshot sync, the "Unhandled error" of a
# trial's result a stopped sweep never collected, and the token-authentication warning.
SNAPSHOT_LOGGER = "ray.tune.execution.experiment_state"
WORKER_LOGGER = "ray._private.worker"
TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"

# Tune's files in its experiment folder, as Ray 2.60 names them: the experiment snapshot,
# and the searchers' states (the grid searcher's is ``basic-variant-state-*.json``).
SNAPSHOT_GLOB = "experiment_state-*.json"
STATE_GLOBS = (SNAPSHOT_GLOB, "*-state-*.json", "*-state-*.pkl")
GRID_STATE_GLOB = "basic-variant-state-*.json"


def run_config(tuner: Any) -> Any:
    """The RunConfig a Tuner runs with; on a restored Tuner, the first session's, which the
    caller may change. Ray 2.60: Tuner has no public getter or setter (ray-project/ray#41364)."""
    return tuner._local_tuner.get_run_config()


def with_mixins(function: Any, *bases: type) -> Any:
    """``function`` (a function trainable) with ``bases`` as bases of the class Tune makes of it.

    Ray 2.60's ``wrap_function`` reads the undocumented ``__mixins__`` attribute.
    """
    function.__mixins__ = bases
    return function


def name_actor(trainable: Any, name: str, *, reused: bool = False) -> None:
    """Name a function trainable's actor (the dashboard shows its repr); ``reused``: also
    write Ray's log-prefix line so the actor's log says where this trial starts.

    Ray 2.60: the repr is the private ``_name``; the prefix is ``ray._private``'s; no public API.
    """
    trainable._name = name
    if reused:
        from ray._private.ray_constants import LOG_PREFIX_ACTOR_NAME

        for stream in (sys.stdout, sys.stderr):
            print(f"{LOG_PREFIX_ACTOR_NAME}{name}", file=stream, flush=True)


def drop_raylet_errors() -> None:
    """Drop the errors Ray pushes to the driver from the ``raylet`` pseudo-process.

    Ray 2.60 prints them from a thread of its own whatever ``log_to_driver`` says, with no
    option to turn them off, through ``ray._private.worker.print_to_stdstream``, which that
    thread looks up at each call.
    """
    from ray._private import worker

    show = worker.print_to_stdstream
    if getattr(show, "drops_raylet", False):
        return

    def print_but_raylet(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            show(data, ignore_prefix)

    print_but_raylet.drops_raylet = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = print_but_raylet


# Ray 2.60's TuneController raises this ValueError (no error type of its own) for a report
# that lacks the metric; Tune's TuneError carries it as its context.
_NO_METRIC = re.compile(r"did not include the specified metric.*?Result: (\{.*\})", re.S)


def report_without_metric(exc: BaseException) -> dict[str, Any] | None:
    """The report Tune stopped on because it lacked the metric ({} if unreadable), if it did."""
    seen: BaseException | None = exc
    while seen is not None:
        match = _NO_METRIC.search(str(seen))
        if match:
            try:
                return dict(ast.literal_eval(match.group(1)))
            except (ValueError, SyntaxError, TypeError):
                return {}
        seen = seen.__cause__ or seen.__context__
    return None


def trial_error_text(trial: Any) -> str:
    """The text of a trial's last failure, from the error file Ray 2.60 writes in the trial's
    local staging folder at ``on_trial_error`` time (``trial.get_error()`` is still None then:
    the file is synced to storage later). The file appends ``Failure # n`` sections."""
    try:
        if not trial.error_file:
            return ""
        with open(trial.error_file, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return text.split("Failure # ")[-1].partition("\n")[2]


def trial_error_cause(trial: Any) -> BaseException | None:
    """The user's exception behind Ray's RayTaskError, from the pickle Ray 2.60 writes beside
    the error file (``trial.get_pickled_error()`` is None at ``on_trial_error`` time too)."""
    import ray.cloudpickle

    try:
        if not trial.pickled_error_file:
            return None
        with open(trial.pickled_error_file, "rb") as f:
            exc = ray.cloudpickle.load(f)
    except Exception:  # a missing file, or a class the driver cannot import
        return None
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _decode(blob: Any) -> Any:
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    return _loads_with_cloudpickle(json.dumps(blob))


def _encode(obj: Any) -> Any:
    from ray.tune.utils.serialization import TuneFunctionEncoder

    return json.loads(json.dumps(obj, cls=TuneFunctionEncoder))


class SnapshotTrial:
    """One trial of Tune's experiment snapshot: a ``[trial JSON, run metadata JSON]`` pair
    whose fields hold cloudpickled private objects, as Ray 2.60 writes them. Tune has no
    public API to change a saved trial's status or checkpoint before ``Tuner.restore``."""

    def __init__(self, entry: list[str]) -> None:
        self.entry = entry

    @cached_property
    def trial(self) -> dict[str, Any]:
        return json.loads(self.entry[0])

    @property
    def trial_id(self) -> str:
        return self.trial.get("trial_id")

    @property
    def status(self) -> str | None:
        """Tune's status: PENDING, RUNNING, PAUSED, TERMINATED or ERROR."""
        return self.trial.get("status")

    @status.setter
    def status(self, value: str) -> None:
        self.trial["status"] = value
        self.entry[0] = json.dumps(self.trial, indent=2)

    @cached_property
    def _meta(self) -> dict[str, Any]:
        return json.loads(self.entry[1])

    @cached_property
    def _manager(self) -> Any:  # Tune's private _CheckpointManager
        return _decode(self._meta["checkpoint_manager"])

    @cached_property
    def _storage(self) -> Any:  # Tune's StorageContext
        return _decode(self.trial["storage"])

    @property
    def checkpoint(self) -> str | None:
        """The path of the trial's latest registered checkpoint."""
        latest = self._manager._latest_checkpoint_result
        return None if latest is None else latest.checkpoint.path

    @property
    def trial_dir_name(self) -> str:
        return self._storage.trial_dir_name

    def repoint(self, name: str | None, metrics: dict[str, Any], next_index: int) -> None:
        """Make the latest checkpoint the folder ``name`` beside the current one, saved with
        ``metrics`` (None: no checkpoint), and number new ones from ``next_index`` on."""
        manager, storage = self._manager, self._storage
        latest = manager._latest_checkpoint_result
        if name is None:
            manager._checkpoint_results, manager._latest_checkpoint_result = [], None
        else:
            path = PurePosixPath(latest.checkpoint.path).with_name(name).as_posix()
            checkpoint = type(latest.checkpoint)(path=path, filesystem=latest.checkpoint.filesystem)
            kept = type(latest)(checkpoint=checkpoint, metrics=metrics)
            manager._checkpoint_results, manager._latest_checkpoint_result = [kept], kept
            self._meta["last_result"] = metrics
        storage.current_checkpoint_index = max(storage.current_checkpoint_index, next_index)
        self._meta["checkpoint_manager"] = _encode(manager)
        self.trial["storage"] = _encode(storage)
        self.entry[:2] = json.dumps(self.trial, indent=2), json.dumps(self._meta, indent=2)


class Snapshot:
    """Tune's newest experiment snapshot in ``tune_dir`` (``experiment_state-*.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = json.loads(path.read_text())

    @classmethod
    def newest(cls, tune_dir: Path) -> Snapshot | None:
        """The newest snapshot; None when there is none (raises if it cannot be read)."""
        snapshots = sorted(Path(tune_dir).glob(SNAPSHOT_GLOB))
        return cls(snapshots[-1]) if snapshots else None

    def trials(self) -> Iterator[SnapshotTrial]:
        for entry in self.state.get("trial_data", []):
            yield SnapshotTrial(entry)

    def save(self) -> None:
        """Write the snapshot back in place, under a temporary name first."""
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)


def release_finished(tune_dir: Path, done: set[str]) -> None:
    """Take ``done`` trials off the grid searcher's running ones in its saved state.

    Ray 2.60's ``BasicVariantGenerator`` saves a pickle of its private fields, running trials
    in ``_live_trials``; it has no public API to tell it of a trial that ended while no
    driver ran. A state that cannot be read is left as it is.
    """
    import ray.cloudpickle

    states = sorted(Path(tune_dir).glob(GRID_STATE_GLOB))
    if not done or not states:
        return
    try:
        state = ray.cloudpickle.loads(states[-1].read_bytes())
        live = state["_live_trials"]
        if not live & done:
            return
        state["_live_trials"] = live - done
        tmp = states[-1].with_name(f".{states[-1].name}.tmp")
        tmp.write_bytes(ray.cloudpickle.dumps(state))
        os.replace(tmp, states[-1])
    except Exception:  # not the state Ray 2.60 writes
        return
