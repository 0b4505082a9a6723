"""Every metric a built-in trainable reports is declared, with a direction or as a measurement."""

from __future__ import annotations

import sys

import pytest

from abl.trainables.metrics import METRICS, metric_info, metric_mode
from abl.trainables.spec import TRAINABLES


@pytest.mark.parametrize("name", TRAINABLES.names())
def test_every_reported_metric_is_declared(name: str) -> None:
    spec = TRAINABLES.get(name)
    undeclared = [m for m in spec.metrics() if m not in METRICS]
    assert undeclared == []


def test_scores_and_measurements() -> None:
    assert metric_mode("val/loss") == "min"
    assert metric_mode("val/acc_seq") == "max"
    assert metric_mode("perf/samples_per_s") is None
    assert metric_mode("user/unknown") is None
    assert metric_info("val/loss").peeks_without_causal_mask
    assert not metric_info("val/loss_last").peeks_without_causal_mask


def test_import_is_light() -> None:
    import subprocess

    code = "import abl.trainables.metrics, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
