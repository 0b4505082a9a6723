"""How long ``abl report`` takes, and how much memory, on a synthetic run of ``n`` trials.

    .venv/bin/python bench/report_scale.py 1000 10000 100000

``run(n_trials)`` writes a run directory with the store's PartWriter (space.yaml, trials and
10 history rows per trial, compacted as a finished sweep leaves them), then builds the report
in a fresh Python process, so the numbers include every import and the peak RSS is the
report's alone. Targets: 10,000 trials in 30 s, 100,000 in 5 min, on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from abl.results.store import PartWriter
from abl.rundir import HISTORY, TRIALS

GRID = {
    "model.pe_type": ["none", "randpe", "sinpe", "rope"],
    "model.is_causal": [True, False],
    "model.is_qln": [True, False],
    "model.is_kln": [True, False],
    "model.n_layer": [1, 4, 8],
}
PE = {"none": 0.4, "randpe": 0.3, "sinpe": 0.15, "rope": 0.0}
STATUSES = (["completed"] * 90) + (["pruned"] * 5) + (["errored"] * 3) + (["diverged"] * 2)
STEPS = 10  # history rows per trial
CHUNK = 10_000  # trials per part file


def _trials(start: int, n: int, design: str, rng: np.random.Generator) -> pd.DataFrame:
    """Trials ``start .. start+n``: grid cells cycled (seed = pass), planted effects, noise."""
    idx = np.arange(start, start + n)
    cells = pd.MultiIndex.from_product(GRID.values(), names=list(GRID)).to_frame(index=False)
    df = cells.iloc[idx % len(cells)].reset_index(drop=True)
    df.insert(0, "trial_id", [f"t{i:07d}" for i in idx])
    df.insert(1, "status", rng.choice(STATUSES, n))
    df["seed"] = idx // len(cells)
    loss = 1.0 + df["model.pe_type"].map(PE) + 0.1 * df["model.is_causal"]
    loss += np.where(df["model.is_qln"] == df["model.is_kln"], -0.05, 0.05)
    if design == "sampled":
        df["train.lr"] = 10 ** rng.uniform(-4, -2, n)
        loss += 0.05 * (np.log10(df["train.lr"]) + 3) ** 2
    loss += rng.normal(0, 0.05, n)
    failed = df["status"].isin(["errored", "diverged"]).to_numpy()
    df["val/loss"] = np.where(failed, np.nan, loss)
    df["train/loss"] = df["val/loss"] * 0.9
    df["predict/mse_regressive"] = df["val/loss"] * 1000
    df["error"] = np.where(df["status"] == "errored", "RuntimeError: synthetic failure", None)
    df["mlflow_run_id"] = [f"r{i}" for i in idx]
    df["wall_s"], df["start"], df["end"] = 30.0, idx * 1.0, idx + 30.0
    return df


def _history(trials: pd.DataFrame) -> pd.DataFrame:
    steps = np.tile(np.arange(1, STEPS + 1), len(trials))
    final = np.repeat(trials["val/loss"].to_numpy(), STEPS)
    return pd.DataFrame(
        {
            "trial_id": np.repeat(trials["trial_id"].to_numpy(), STEPS),
            "step": steps,
            "time": steps * 3.0,
            "val/loss": final * (1 + (STEPS - steps) / STEPS),
        }
    )


def write_run(run_dir: Path, n_trials: int, design: str = "sampled", seed: int = 0) -> Path:
    """A finished run of ``n_trials`` (``design``: "grid" or "sampled") in ``run_dir``."""
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    space: dict[str, Any] = {"name": "report-scale", "trainable": "forecast", "grid": GRID}
    if design == "sampled":
        space["sample"] = {"train.lr": {"loguniform": [1.0e-4, 1.0e-2]}}
        space["search"] = {"algorithm": "random", "samples": max(1, n_trials // 96)}
    (run_dir / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    (run_dir / "mlflow.json").write_text(
        json.dumps({"tracking_uri": "sqlite:///x.db", "experiment_id": "1"})
    )
    trials, history = PartWriter(run_dir / TRIALS), PartWriter(run_dir / HISTORY)
    for start in range(0, n_trials, CHUNK):
        chunk = _trials(start, min(CHUNK, n_trials - start), design, rng)
        trials.append(chunk.to_dict("records"))
        history.append(_history(chunk).to_dict("records"))
    trials.compact(key="trial_id")
    history.compact()
    return run_dir


_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from abl.results import build_report
t1 = time.perf_counter()
paths = build_report(sys.argv[1])
t2 = time.perf_counter()
# This process's own peak: VmHWM starts afresh at exec, unlike ru_maxrss, which a child
# inherits from the parent it was forked from (a parent that just built a 100k-trial run).
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"import_s": t1 - t0, "report_s": t2 - t1, "plots": len(paths.plots),
                  "peak_kb": int(hwm.split()[1])}))
"""


def run(n_trials: int, design: str = "sampled") -> dict[str, Any]:
    """Build the report of a synthetic run of ``n_trials``; seconds and peak RSS (MB).

    >>> run(1000)  # doctest: +SKIP
    {'n_trials': 1000, 'design': 'sampled', 'seconds': 9.1, 'report_s': 6.0, 'peak_rss_mb': 310.0, ...}
    """
    with tempfile.TemporaryDirectory(prefix="abl-report-scale-") as tmp:
        t = time.perf_counter()
        run_dir = write_run(Path(tmp) / "run", n_trials, design)
        setup_s = time.perf_counter() - t
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(run_dir)], stdout=subprocess.PIPE, text=True
        )
        out = proc.stdout.read() if proc.stdout else ""
        proc.wait()
        seconds = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(f"build_report failed on {n_trials} trials (exit {proc.returncode})")
        child = json.loads(out.strip().splitlines()[-1])
    return {
        "n_trials": n_trials,
        "design": design,
        "seconds": round(seconds, 2),  # the whole process: interpreter, imports, report
        "report_s": round(child["report_s"], 2),  # build_report alone
        "import_s": round(child["import_s"], 2),
        "peak_rss_mb": round(child["peak_kb"] / 1024, 1),
        "setup_s": round(setup_s, 2),
        "plots": child["plots"],
    }


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["1000", "10000"]:
        for kind in ("grid", "sampled"):
            print(json.dumps(run(int(arg), kind)), flush=True)
