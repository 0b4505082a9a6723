"""``abl top``: seed and status, constant metrics folded away, md/csv/json, and a closed pipe."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from abl.cli import main
from tests.results.synthetic import write_run

GRID = {"model.pe_type": ["rope", "sinpe"]}


def run_dir(tmp_path: Path, cells: int = 1) -> Path:
    rows = []
    for i, (pe, seed) in enumerate([("rope", 0), ("rope", 1), ("sinpe", 0), ("sinpe", 1)] * cells):
        rows.append(
            {
                "trial_id": f"t{i:05d}",
                "status": "completed",
                "seed": seed,
                "model.pe_type": pe,
                "val/loss": 1.0 + i / 3,
                "model/params": 1234,
                "perf/torch_threads": 1,
            }
        )
    space = {"name": "s", "trainable": "forecast", "grid": GRID, "repeats": 2}
    return write_run(tmp_path / "root" / "s" / "2025-01-10_00-00-00", rows, space=space)


def top(run: Path, *args: str):
    return CliRunner().invoke(main, ["--root", str(run.parent.parent), "top", str(run), *args])


def test_table_shows_seed_status_and_folds_constant_metrics(tmp_path: Path) -> None:
    result = top(run_dir(tmp_path))
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "trial" in line and "seed" in line)
    assert "status" in header and "model/params" not in header
    assert "same for every trial (--all shows them): model/params=1234, perf/torch_threads=1" in (
        result.stdout
    )
    assert "1.333" in result.stdout  # 4 significant digits
    full = top(run_dir(tmp_path / "again"), "--all")
    assert "model/params" in full.stdout and "same for every trial" not in full.stdout


def test_md_csv_and_json_hold_the_same_ranking(tmp_path: Path) -> None:
    run = run_dir(tmp_path)
    md = top(run, "--format", "md", "-k", "2").stdout.splitlines()
    assert md[0] == "| rank | trial_id | status | seed | model.pe_type | val/loss |"
    assert md[2] == "| 1 | t00000 | completed | 0 | rope | 1 |"
    assert md[3].startswith("| 2 | t00001 | completed | 1 | rope | 1.333 |")
    rows = list(csv.DictReader(io.StringIO(top(run, "--format", "csv").stdout)))
    assert [r["trial_id"] for r in rows] == ["t00000", "t00001", "t00002", "t00003"]
    data = json.loads(top(run, "--format", "json").stdout)
    assert data[3] == {
        "rank": 4,
        "trial_id": "t00003",
        "status": "completed",
        "seed": 1,
        "model.pe_type": "sinpe",
        "val/loss": 2.0,
    }


def test_top_into_a_closed_pipe_exits_0(tmp_path: Path) -> None:
    run = run_dir(tmp_path, cells=2000)  # a table far larger than a pipe's buffer
    cmd = [sys.executable, "-m", "abl", "--root", str(run.parent.parent), "top", str(run)]
    cmd += ["-k", "8000"]  # the terminal table (rich), which click's echo does not guard
    # `| head -1`: the reader takes one line and closes the pipe while abl still writes.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
