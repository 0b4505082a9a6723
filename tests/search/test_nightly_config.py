"""The nightly config: the shipped cluster/nightly.yaml, rule merging, and which run is "previous"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abl.errors import AblError
from abl.search.nightly import NIGHTLY_JSON, load_nightly, plan_nightly, previous_nightly, rules_of

SHIPPED = Path(__file__).resolve().parents[2] / "cluster" / "nightly.yaml"


def test_the_shipped_config_loads_and_plans(tmp_path):
    config = load_nightly(SHIPPED)
    planned = plan_nightly(config, tmp_path)
    assert [p.space.name for p in planned] == ["quickstart", "bigram_pe", "looped_linreg"]
    assert all(p.previous is None for p in planned)
    bigram = planned[1]
    assert bigram.space.fixed["train.epochs"] == 2
    assert bigram.rules.regression_pct == 10 and bigram.rules.top_changed is False
    assert bigram.rules.regression_std == config.rules["regression_std"]  # the file's default


def test_a_space_replaces_single_rule_keys(tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text(
        "rules: {regression_pct: 2, importance_flip: false}\n"
        "spaces:\n  - space: quickstart\n    rules: {regression_pct: 7}\n  - space: bigram_pe\n"
    )
    config = load_nightly(path)
    first, second = rules_of(config, 0), rules_of(config, 1)
    assert (first.regression_pct, first.importance_flip) == (7, False)
    assert (second.regression_pct, second.importance_flip) == (2, False)


def test_the_digest_name_must_not_be_a_space_name(tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text("name: quickstart\nspaces: [{space: quickstart}]\n")
    with pytest.raises(AblError, match="may not be named like the nightly"):
        plan_nightly(load_nightly(path), tmp_path)


def mark(root: Path, stamp: str, *, fired: bool | None, nightly: bool = True) -> Path:
    run = root / "q" / stamp
    run.mkdir(parents=True)
    (run / "space.yaml").write_text("name: q\ntrainable: forecast\n")
    if nightly:
        (run / NIGHTLY_JSON).write_text(json.dumps({"nightly": stamp, "fired": fired}))
    return run


def test_previous_is_the_newest_nightly_run_not_any_run(tmp_path):
    assert previous_nightly(tmp_path, "q") is None
    mark(tmp_path, "2025-01-01_02-00-00", fired=False)
    newest = mark(tmp_path, "2025-01-02_02-00-00", fired=True)
    mark(tmp_path, "2025-01-02_09-00-00", fired=None, nightly=False)  # an `abl search` by hand
    assert previous_nightly(tmp_path, "q") == newest.resolve()


def test_last_clear_skips_nightlies_in_which_a_rule_fired(tmp_path):
    clear = mark(tmp_path, "2025-01-01_02-00-00", fired=False)
    mark(tmp_path, "2025-01-02_02-00-00", fired=True)
    mark(tmp_path, "2025-01-02_02-00-00_1", fired=True)
    assert previous_nightly(tmp_path, "q", clear=True) == clear.resolve()


def test_last_clear_falls_back_to_the_newest_when_none_was_clear(tmp_path):
    mark(tmp_path, "2025-01-02_02-00-00", fired=True)
    newest = mark(tmp_path, "2025-01-02_02-00-00_1", fired=True)
    assert previous_nightly(tmp_path, "q", clear=True) == newest.resolve()
