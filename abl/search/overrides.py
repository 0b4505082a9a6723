"""Hydra-style command-line overrides, because that is what researchers already type.

``key=value`` fixes a trial parameter, ``key=a,b,c`` (or ``choice(a,b,c)``, ``range(1,5)``)
makes it a grid axis; space settings take one value (``repeats=3``, ``search.algorithm=tpe``).
Values are YAML scalars: ``1e-3`` is a float, ``true`` a bool, ``'a,b'`` the string ``a,b``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from abl.errors import AblError
from abl.search import _yaml

# Space settings: an override whose first dotted part is one of these sets the space, not a trial.
SETTINGS = (
    "name",
    "trainable",
    "description",
    "metric",
    "mode",
    "repeats",
    "tune",
    "confirm",
    "search",
    "scheduler",
    "resources",
    "max_failures",
    "plugins",
)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_CALL = re.compile(r"^(range|choice)\((.*)\)$", re.S)


@dataclass(frozen=True)
class Override:
    """One parsed ``key=value`` override; several values make a grid axis."""

    key: str
    values: tuple[Any, ...]
    text: str

    @property
    def is_sweep(self) -> bool:
        return len(self.values) > 1


def split_top(text: str) -> list[str]:
    """Split on commas outside quotes, brackets and parentheses."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _scalar(text: str, where: str) -> Any:
    if not text:
        raise AblError(f"an override needs a value after '='; got an empty one ({where})")
    value = _yaml.loads(text, source=where)
    return value


def _range(args: list[Any], where: str) -> list[int]:
    if not 1 <= len(args) <= 3 or not all(
        isinstance(a, int) and not isinstance(a, bool) for a in args
    ):
        raise AblError(
            f"range takes 1 to 3 whole numbers (start, stop, step); got {args} ({where})"
        )
    values = list(range(*args))
    if not values:
        raise AblError(f"range({', '.join(map(str, args))}) is empty ({where})")
    return values


def parse_override(text: str) -> Override:
    """Parse ``key=value`` / ``key=a,b`` / ``key=range(1,5)`` / ``key=choice(a,b)``."""
    where = f"override '{text}'"
    key, sep, rhs = text.partition("=")
    key = key.strip()
    if not sep:
        raise AblError(f"an override must be key=value or key=a,b,c; got '{text}'")
    if not _KEY.match(key):
        raise AblError(
            f"an override key is a dotted name like model.pe_type; got '{key}' ({where})"
        )
    rhs = rhs.strip()
    call = _CALL.match(rhs)
    if call:
        args = [_scalar(p, where) for p in split_top(call.group(2))]
        values = _range(args, where) if call.group(1) == "range" else args
    else:
        values = [_scalar(p, where) for p in split_top(rhs)]
    return Override(key=key, values=tuple(values), text=text)


def apply_overrides(raw: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """A copy of the raw space mapping with every override applied, in order."""
    out = copy.deepcopy(raw)
    for text in texts:
        ov = parse_override(text)
        head = ov.key.split(".")[0]
        if head in SETTINGS:
            _set_setting(out, ov)
        else:
            _set_param(out, ov)
    return out


def _set_setting(raw: dict[str, Any], ov: Override) -> None:
    if ov.is_sweep:
        raise AblError(
            f"space setting '{ov.key}' takes one value; got {list(ov.values)} (override '{ov.text}')"
        )
    node = raw
    *parents, last = ov.key.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = (
                {}
                if child in (None, "none")
                else {part: child}
                if isinstance(child, str)
                else child
            )
            node[part] = child
        node = child
    node[last] = ov.values[0]


def _set_param(raw: dict[str, Any], ov: Override) -> None:
    for section in ("fixed", "grid", "sample"):
        if isinstance(raw.get(section), dict):
            raw[section].pop(ov.key, None)
    if ov.is_sweep:
        raw.setdefault("grid", {})
        if not isinstance(raw["grid"], dict):
            raw["grid"] = {}
        raw["grid"][ov.key] = list(ov.values)
    else:
        if not isinstance(raw.get("fixed"), dict):
            raw["fixed"] = {}
        raw["fixed"][ov.key] = ov.values[0]
