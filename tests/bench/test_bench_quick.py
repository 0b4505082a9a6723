"""The benchmark harness runs: ``python -m bench --quick`` writes its results file.

Runs in every ``pytest`` (CI included) so that bench/ does not rot while abl changes under
it. Never checks a number: the figures are ratios measured on whatever machine runs the
tests, and a shared CI runner is the noisiest of all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import Figure, Verdict, summarize
from bench._figure import at_most
from bench._report import FigureResult, render

ROOT = Path(__file__).resolve().parents[2]
FIGURE = "overhead"  # the cheapest figure that runs trials through abl and raw Ray Tune


@pytest.mark.ray
def test_quick_figure_writes_its_section(tmp_path):
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", FIGURE, "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "RAY_ADDRESS": "local"},  # its own Ray, never a running one
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = out.read_text()
    assert "| cores |" in text and "| ray |" in text
    assert f"## {FIGURE}" in text and "| abl per trial |" in text
    assert "errored" not in text


def test_repeats_are_judged_on_their_median():
    runs = []
    for value in (0.1, 0.3, 0.25):
        fig = Figure("f", "a figure")
        fig.add("ratio", value, "x", at_most(0.26))
        fig.add("seconds", value * 10, "s")
        runs.append(fig)
    ratio, seconds = summarize(runs)
    assert (ratio.low, ratio.median, ratio.high) == (0.1, 0.25, 0.3)
    assert ratio.verdict is Verdict.PASS and seconds.verdict is Verdict.INFO
    text = render([FigureResult("f", "a figure", runs)], {"cores": "2"}, "python -m bench")
    assert "## f" in text and "| ratio | 0.1 | 0.25 | 0.3 | <= 0.26 | pass |" in text
