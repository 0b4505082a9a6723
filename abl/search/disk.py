"""A full disk under the results root: how abl recognizes it, and Tune's state kept readable.

A sweep stops at the first write that fails for lack of space (a sink's, Tune's snapshot's, or
a trial's checkpoint's) the way Ctrl-C stops it, and ``--resume`` continues once space is freed.
Tune overwrites its state files (``experiment_state-*.json``, the searcher's) in place, so a
full disk can leave them truncated; the driver keeps the last complete copy of each in
``tune/.abl-good/`` and :func:`repair_state` puts that set back before a resume.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

from abl.search import raycompat

# ENOSPC: the filesystem is full; EDQUOT: the user's quota is; EFBIG: a file-size limit.
DISK_FULL_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EFBIG))
_DISK_FULL_TEXT = re.compile(
    r"No space left on device|Disk quota exceeded|File too large|database or disk is full"
    r"|\[errno (?:" + "|".join(str(n) for n in sorted(DISK_FULL_ERRNOS)) + r")\]",
    re.IGNORECASE,
)
GOOD_DIR = ".abl-good"  # in the run's tune/: the last complete copy of each state file


def is_disk_full(exc: BaseException | str | None) -> bool:
    """Whether ``exc`` (an exception, its chain, or an error's text) says the disk is full.

    Errors that crossed a process (a trial's, MLflow's SQLite "database or disk is full",
    pyarrow's "[errno 28]") keep only their text, so the text counts too.
    """
    seen: set[int] = set()
    while isinstance(exc, BaseException) and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        if _DISK_FULL_TEXT.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return isinstance(exc, str) and _DISK_FULL_TEXT.search(exc) is not None


class DiskFullLog(logging.Filter):
    """Drops the log records (with their tracebacks) of writes that failed for lack of space,
    and remembers the first: Tune's snapshot sync and MLflow's SQLite store log them on their
    own threads, where abl sees no exception."""

    # Tune's snapshot sync, MLflow's SQLite store, and Ray's "Unhandled error" of a trial
    # whose failed result the stopped sweep never collected.
    LOGGERS = (raycompat.SNAPSHOT_LOGGER, "mlflow.store.db.utils", raycompat.WORKER_LOGGER)

    def __init__(self) -> None:
        super().__init__()
        self.seen: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not (is_disk_full(exc) or is_disk_full(record.getMessage())):
            return True
        if self.seen is None:
            self.seen = record.getMessage().splitlines()[0]
        return False

    def install(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)

    def remove(self) -> None:
        """Uninstall, unless the disk was full: Ray reports the trials it failed until exit."""
        if self.seen is not None:
            return
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)


def _state_files(tune_dir: Path) -> list[Path]:
    """Tune's state files that a resume reads and that Tune rewrites as it runs."""
    globs = raycompat.STATE_GLOBS
    return sorted({p for pattern in globs for p in tune_dir.glob(pattern) if p.is_file()})


def _complete(path: Path) -> bool:
    """Whether a state file was written to its end: a pickle that ends (Tune names some of
    its pickles ``.json``), or JSON that parses."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if data.startswith(b"\x80"):  # a pickle's PROTO opcode
        return data.endswith(b".")  # and its STOP opcode
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


class StateKeeper:
    """Copies Tune's state files to ``tune/.abl-good/`` whenever they are complete and new.

    The files are kept as one set (the trials of the experiment snapshot and the searcher's
    state must match): copied only when each is complete and none has changed for
    ``settle_s`` seconds or while it was copied. A copy is written under a temporary name and
    renamed, so a failed one (the disk is full) leaves the previous set.
    """

    def __init__(self, tune_dir: Path, settle_s: float = 0.5) -> None:
        self.tune_dir = Path(tune_dir)
        self.settle_s = settle_s
        self._kept: dict[str, tuple[int, int]] = {}  # name -> (mtime_ns, size) copied

    def _stamps(self) -> dict[str, tuple[int, int]]:
        stamps = {}
        for path in _state_files(self.tune_dir):
            with contextlib.suppress(OSError):
                stat = path.stat()
                stamps[path.name] = (stat.st_mtime_ns, stat.st_size)
        return stamps

    def keep(self) -> None:
        stamps = self._stamps()
        if not stamps or stamps == self._kept:
            return
        newest = max(mtime for mtime, _ in stamps.values()) / 1e9
        if time.time() - newest < self.settle_s:
            return  # Tune may be writing the set: the next call copies it
        good = self.tune_dir / GOOD_DIR
        tmps = {name: good / f".{name}.tmp" for name in stamps}
        try:
            good.mkdir(exist_ok=True)
            for name, tmp in tmps.items():
                shutil.copyfile(self.tune_dir / name, tmp)
            if self._stamps() != stamps or not all(_complete(t) for t in tmps.values()):
                return
            for name, tmp in tmps.items():
                os.replace(tmp, good / name)
            for old in good.glob("*"):
                if not old.name.startswith(".") and old.name not in stamps:
                    old.unlink()
            self._kept = stamps
        except OSError:
            pass  # no space for the copy: the previous set stays
        finally:
            for tmp in tmps.values():
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)


def repair_state(tune_dir: Path) -> list[str]:
    """Put back the last complete set of Tune's state files when a full disk left one of them
    truncated or empty; returns the names put back."""
    tune_dir = Path(tune_dir)
    good = tune_dir / GOOD_DIR
    copies = [p for p in good.glob("*") if not p.name.startswith(".")] if good.is_dir() else []
    if not broken_state(tune_dir) or not copies or not all(map(_complete, copies)):
        return []
    for copy in copies:
        tmp = tune_dir / f".{copy.name}.tmp"
        shutil.copyfile(copy, tmp)
        os.replace(tmp, tune_dir / copy.name)
    return sorted(p.name for p in copies)


def broken_state(tune_dir: Path) -> list[str]:
    """Tune's state files that are not complete (after :func:`repair_state`: beyond repair)."""
    return [p.name for p in _state_files(Path(tune_dir)) if not _complete(p)]
