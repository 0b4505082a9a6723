"""``abl search`` pieces that need no sweep: the hint that says where to browse the results."""

from __future__ import annotations

from pathlib import Path

import pytest

from abl.cli.search import browse_hint


def test_browse_hint_opens_the_store_the_sweep_logged_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    assert browse_hint(tmp_path, default) == f"abl --root {tmp_path} ui"
    other = f"sqlite:///{tmp_path}/team store.db"
    assert browse_hint(tmp_path, other) == f"abl ui --tracking-uri '{other}'"
    assert browse_hint(tmp_path, "http://alice:s3cr3t@mlflow:5000") == (
        "open http://alice:***@mlflow:5000"
    )
