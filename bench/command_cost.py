"""Figure ``command_cost``: what a trial costs as a command (a process of its own) against the
same no-op trial as an in-process function trainable.

    python -m bench --only command_cost

32 trials (4 with ``--quick``) of each, on the same 2-CPU Ray instance, one trial per CPU:
``spaces/noop.yaml`` (:func:`bench.noop.trainable`, 10 reports) and
``spaces/noop_command.yaml`` (``python bench/noop_script.py``, 10 ``abl.report`` lines), both
through ``run_sweep`` with every sink; and, measured alone, the floor: starting that script
as a plain process. The figure is the command trial's extra time over the function trial's,
in units of that floor (the process start), and the two per-trial times.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._env import BENCH_DIR, NOOP_SPACE, Stopwatch, ensure_ray, quiet_console
from bench._figure import Figure, at_most

TRIALS, QUICK_TRIALS = 32, 4
STARTS = 10  # plain starts of the script, for the floor
COMMAND_SPACE = BENCH_DIR / "spaces" / "noop_command.yaml"


def sweep_seconds(space_file: Path, root: Path, trials: int) -> float:
    """Seconds of ``run_sweep`` over ``trials`` trials of a no-op space, every sink on."""
    from abl.search import SweepOptions, run_sweep
    from abl.space import load_space

    space = load_space(str(space_file), [f"repeats={trials}"])
    with Stopwatch() as sw:
        sweep = run_sweep(space, SweepOptions(root=root, dashboard=False), console=quiet_console())
    if sweep.errors or sweep.trials != trials:
        raise RuntimeError(f"{space.name}: {sweep.trials}/{trials} trials, {sweep.errors}")
    return sw.seconds


def start_seconds() -> float:
    """Median seconds of ``python bench/noop_script.py`` as a plain process (abl.report prints)."""
    script = str(BENCH_DIR / "noop_script.py")
    env = {k: v for k, v in os.environ.items() if k != "ABL_REPORT_FILE"}
    times = []
    for _ in range(STARTS):
        with Stopwatch() as sw:
            subprocess.run([sys.executable, script], env=env, capture_output=True, check=True)
        times.append(sw.seconds)
    return statistics.median(times)


def run(quick: bool) -> Figure:
    """The command trial's extra cost over an in-process one, in process starts."""
    n = QUICK_TRIALS if quick else TRIALS
    fig = Figure("command_cost", f"{n} no-op trials as a command vs in-process, 2 CPUs")
    ensure_ray()
    with tempfile.TemporaryDirectory(prefix="abl-bench-command-") as tmp:
        root = Path(tmp)
        os.chdir(BENCH_DIR.parent)  # the command's relative path is from the repository root
        sweep_seconds(NOOP_SPACE, root, 2)  # warm: imports, mlflow.db, Ray's workers
        sweep_seconds(COMMAND_SPACE, root, 2)
        function_s = sweep_seconds(NOOP_SPACE, root, n) / n
        command_s = sweep_seconds(COMMAND_SPACE, root, n) / n
    floor = start_seconds()
    fig.add(
        "command trial's extra over in-process / process start",
        (command_s - function_s) / floor,
        "x",
        at_most(2.0),
    )
    fig.add("command per trial", command_s, "s/trial")
    fig.add("in-process function per trial", function_s, "s/trial")
    fig.add("the script started as a plain process (the floor)", floor, "s")
    fig.notes.append(
        "a command trial pays its process's start, and up to one poll (0.1 s) after its last "
        "report before abl sees it exit; per CPU, two trials at a time"
    )
    return fig
