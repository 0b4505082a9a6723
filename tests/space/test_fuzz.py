"""Property-based fuzzing: whatever a space file or an override says, loading it gives a valid
Space or one AblError line, never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abl.errors import AblError
from abl.space import load_space
from abl.space.schema import Space, builtin_spaces_dir

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys and values that real spaces use, so that examples get past the first check.
KEYS = [
    "name", "trainable", "metric", "mode", "fixed", "grid", "sample", "when", "repeats", "search",
    "scheduler", "resources", "max_failures", "description", "tune", "confirm", "if", "asha",
    "algorithm", "samples", "concurrency", "seed", "cpu", "gpu", "grace_period", "params",
    "trials", "model.pe_type", "model.kind", "model.d_model", "train.lr", "train.epochs",
    "data.length", "uniform", "loguniform", "int", "choice", "forecast", "charlm",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([*KEYS, "rope", "min", "max", "tpe", "grid", "random", "1e-3", ""]),
    st.text(max_size=12),
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=25,
)
# Override fragments: Hydra syntax pieces, so the parser sees near-misses of real overrides.
PIECES = st.sampled_from(
    [*KEYS, "=", ",", "range(", ")", "choice(", "[", "]", "{", "}", "'", '"', "1", "0.5", "-",
     "rope", "none", " ", "\\", ":", "~", "+", "null", "1e-3", "2,", "sinpe"]
)  # fmt: skip
OVERRIDE = st.one_of(st.text(max_size=30), st.lists(PIECES, max_size=8).map("".join))


def load_text(data: bytes, overrides: list[str] | None = None) -> Space | None:
    """Load ``data`` as a space file; an AblError is a fine answer, any other exception fails."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_bytes(data)
        try:
            return load_space(str(path), overrides or [])
        except AblError as exc:
            assert "\n" not in str(exc).strip(), str(exc)  # one line
            return None


def assert_valid(space: Space | None) -> None:
    if space is not None:
        assert isinstance(space, Space) and space.name and space.trainable


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_load_or_give_one_line(data: bytes) -> None:
    assert_valid(load_text(data))


@FUZZ
@given(DOCS)
def test_any_yaml_document_loads_or_gives_one_line(doc: Any) -> None:
    assert_valid(load_text(yaml.safe_dump(doc).encode()))


def _builtin(name: str) -> dict[str, Any]:
    return yaml.safe_load((builtin_spaces_dir() / f"{name}.yaml").read_text())


@FUZZ
@given(
    st.sampled_from(["quickstart", "bigram_pe", "latent_copy", "looped_linreg"]),
    st.sampled_from(["fixed", "grid", "search", "scheduler", "resources", "top"]),
    st.one_of(st.sampled_from(KEYS), st.text(max_size=10)),
    DOCS,
)
def test_a_real_space_with_one_value_changed_loads_or_gives_one_line(
    name: str, section: str, key: str, value: Any
) -> None:
    raw = _builtin(name)
    target = raw if section == "top" else raw.setdefault(section, {})
    if isinstance(target, dict):
        target[key] = value
    assert_valid(load_text(yaml.safe_dump(raw).encode()))


@FUZZ
@given(st.lists(OVERRIDE, max_size=4))
def test_any_overrides_apply_or_give_one_line(overrides: list[str]) -> None:
    text = (builtin_spaces_dir() / "quickstart.yaml").read_bytes()
    assert_valid(load_text(text, overrides))


@FUZZ
@given(st.sampled_from(KEYS[27:]), st.lists(PIECES, min_size=1, max_size=6).map("".join))
def test_key_equals_anything_applies_or_gives_one_line(key: str, value: str) -> None:
    text = (builtin_spaces_dir() / "quickstart.yaml").read_bytes()
    assert_valid(load_text(text, [f"{key}={value}"]))
