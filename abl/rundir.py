"""The layout of a results root: ``<root>/<sweep>/<timestamp>/``, one run directory a sweep run.

The one place that names the files a run directory holds, makes a new one, and finds the
latest run of a sweep; :mod:`abl.search` writes them and :mod:`abl.results` reads them.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from abl.errors import AblError, did_you_mean, one_of

SPACE_FILE = "space.yaml"  # the resolved space the sweep ran
MLFLOW_JSON = "mlflow.json"  # the MLflow sink's: tracking URI, experiment and parent run
TUNE_DIR = "tune"  # Ray Tune's experiment state and checkpoints, for --resume
# in each trial's folder of TUNE_DIR: the report that carried each checkpoint
CHECKPOINT_LEDGER = "abl-checkpoints.jsonl"
TRIALS = "trials.parquet"  # one row per trial
HISTORY = "history.parquet"  # one row per report


def new_run_dir(root: Path, name: str) -> Path:
    """``<root>/<name>/<timestamp>``, created; a suffix keeps two sweeps in one second apart."""
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    base = (root / name).resolve()
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        run_dir = base / (stamp if n == 0 else f"{stamp}_{n}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run directory under {base}")


def run_order(path: Path) -> tuple[str, int]:
    """Oldest first: timestamps sort as text; ``<stamp>_<n>`` (two in one second) by ``n``."""
    m = re.match(r"^(.*)_(\d+)$", path.name)
    return (m.group(1), int(m.group(2))) if m else (path.name, 0)


def runs_of(sweep_dir: Path, marker: str = SPACE_FILE) -> list[Path]:
    """The run directories of one sweep (the subfolders holding ``marker``), oldest first."""
    return sorted((p for p in _subdirs(sweep_dir) if (p / marker).is_file()), key=run_order)


def latest_run(root: Path, name: str) -> Path | None:
    """The newest run directory of sweep ``name`` under ``root``, if it has one."""
    runs = runs_of(Path(root) / name)
    return runs[-1] if runs else None


def resolve_run(run: str | Path, *, root: Path) -> Path:
    """A run directory given as a path, or the latest run of a sweep name under ``root``.

    >>> resolve_run("quickstart", root=Path("abl-runs"))  # doctest: +SKIP
    PosixPath('abl-runs/quickstart/2025-04-21_17-39-20')
    """
    path = Path(run)
    if (path / SPACE_FILE).is_file():
        return path
    runs = runs_of(path if path.is_dir() else Path(root) / str(run))
    if runs:
        return runs[-1]
    # sweeps are the folders holding runs: not mlartifacts/, nightly/
    sweeps = sorted(p.name for p in _subdirs(Path(root)) if runs_of(p))
    raise AblError(
        f"RUN must be a run directory (with {SPACE_FILE}) or a sweep name under {root} "
        f"({one_of(sweeps) or 'none yet'}); got '{run}'{did_you_mean(str(run), sweeps)}"
    )


def _subdirs(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []
