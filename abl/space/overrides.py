"""Hydra-style command-line overrides, because that is what researchers already type.

``key=value`` fixes a trial parameter, ``key=a,b,c`` (or ``choice(a,b,c)``, ``range(1,5)``)
makes it a grid axis; space settings take one value (``repeats=3``, ``search.algorithm=tpe``).
As in Hydra, ``~key`` deletes a key the space sets, ``+key=v`` adds one it does not set yet
(an error if it does), and ``++key=v`` sets it either way (the same as ``key=v``).
Values are YAML: ``1e-3`` is a float, ``true`` a bool, ``'a,b'`` the string ``a,b``,
``[a,b]`` one list value.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Literal

from abl.errors import AblError
from abl.space import yamlfile

# Space settings: an override whose first dotted part is one of these sets the space, not a trial.
SETTINGS = (
    "name",
    "trainable",
    "description",
    "metric",
    "mode",
    "report",
    "repeats",
    "tune",
    "confirm",
    "search",
    "scheduler",
    "resources",
    "max_failures",
    "pack",
    "plugins",
)
PARAM_SECTIONS = ("fixed", "grid", "sample")  # where a space gives trial parameters
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_FLOW_KEY = re.compile(r"([{,]\s*[A-Za-z_][\w.]*):(?=\S)")
_CALL = re.compile(r"^(range|choice)\((.*)\)$", re.S)


@dataclass(frozen=True)
class Override:
    """One parsed ``key=value`` override; several values make a grid axis."""

    key: str
    values: tuple[Any, ...]  # empty for a deletion
    text: str
    op: Literal["set", "add", "delete"] = "set"  # key=v / ++key=v, +key=v, ~key

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
    if text.startswith("{"):
        # Hydra writes a dict as {min:2,max:10}; YAML needs a space after a key's colon.
        text = _FLOW_KEY.sub(r"\1: ", text)
    return yamlfile.loads(text, source=where)


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
    op: Literal["set", "add", "delete"] = "set"
    if key.startswith("~"):
        key = key[1:]
        if sep:
            raise AblError(f"a deletion is ~key, without a value; got '{text}'")
        if not _KEY.match(key):
            raise AblError(
                f"an override key is a dotted name like model.pe_type; got '{key}' ({where})"
            )
        return Override(key=key, values=(), text=text, op="delete")
    if key.startswith("++"):
        key = key[2:]
    elif key.startswith("+"):
        key, op = key[1:], "add"
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
    return Override(key=key, values=tuple(values), text=text, op=op)


def apply_overrides(raw: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """A copy of the raw space mapping with every override applied, in order."""
    out = copy.deepcopy(raw)
    for text in texts:
        ov = parse_override(text)
        head = ov.key.split(".")[0]
        if ov.op != "set":
            _check_presence(out, ov, head in SETTINGS)
        if ov.op == "delete":
            _delete(out, ov, head in SETTINGS)
        elif head in SETTINGS:
            _set_setting(out, ov)
        else:
            _set_param(out, ov)
    return out


def _setting_node(raw: dict[str, Any], key: str) -> tuple[dict[str, Any] | None, str]:
    """The mapping that holds a dotted setting's last part (``None`` when a parent is missing)."""
    node: Any = raw
    *parents, last = key.split(".")
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), last


def _check_presence(raw: dict[str, Any], ov: Override, setting: bool) -> None:
    if setting:
        node, last = _setting_node(raw, ov.key)
        present = node is not None and last in node
    else:
        present = _gives(raw, ov.key) or any(
            isinstance(b, dict) and _gives(b, ov.key) for b in raw.get("when") or []
        )
    if ov.op == "delete" and not present:
        raise AblError(
            f"~{ov.key} deletes a key the space sets; the space does not set '{ov.key}' "
            f"(override '{ov.text}')"
        )
    if ov.op == "add" and present:
        raise AblError(
            f"+{ov.key} adds a key the space does not set yet; it already sets '{ov.key}': use "
            f"{ov.key}=... or ++{ov.key}=... to change it (override '{ov.text}')"
        )


def _delete(raw: dict[str, Any], ov: Override, setting: bool) -> None:
    if setting:
        node, last = _setting_node(raw, ov.key)
        if node is not None:
            node.pop(last, None)
        return
    _drop_param(raw, ov.key)


def _drop_param(raw: dict[str, Any], key: str) -> None:
    """Remove a trial parameter from the top level and from every ``when:`` block."""
    for node in [raw, *(b for b in raw.get("when") or [] if isinstance(b, dict))]:
        for section in PARAM_SECTIONS:
            if isinstance(node.get(section), dict):
                node[section].pop(key, None)


def _set_setting(raw: dict[str, Any], ov: Override) -> None:
    if ov.is_sweep:
        raise AblError(
            f"space setting '{ov.key}' takes one value; got {list(ov.values)} (override '{ov.text}')"
        )
    node = raw
    *parents, last = ov.key.split(".")
    for i, part in enumerate(parents):
        child = node.get(part)
        if not isinstance(child, dict):
            if child not in (None, "none") and not isinstance(child, str):
                where = ".".join(parents[: i + 1])
                raise AblError(
                    f"space setting '{where}' is a single value ({child!r}), so it has no "
                    f"'{'.'.join(ov.key.split('.')[i + 1 :])}' to set; write {where}=... "
                    f"(override '{ov.text}')"
                )
            child = {} if child in (None, "none") else {part: child}
            node[part] = child
        node = child
    node[last] = ov.values[0]


def _set_param(raw: dict[str, Any], ov: Override) -> None:
    """Set a trial parameter everywhere the space gives it: top level and every ``when:`` block.

    A key that only ``when:`` blocks give (``model.n_embd`` of one model kind) is replaced in
    those blocks, so it keeps applying to the trials it applied to; otherwise the top level
    takes it. Either way no other entry is left to outvote the override.
    """
    blocks = [b for b in raw.get("when") or [] if isinstance(b, dict)]
    in_blocks = [b for b in blocks if _gives(b, ov.key)]
    targets = in_blocks if in_blocks and not _gives(raw, ov.key) else [raw]
    _drop_param(raw, ov.key)
    section = "grid" if ov.is_sweep else "fixed"
    for node in targets:
        if not isinstance(node.get(section), dict):
            node[section] = {}
        node[section][ov.key] = list(ov.values) if ov.is_sweep else ov.values[0]


def _gives(node: dict[str, Any], key: str) -> bool:
    return any(isinstance(node.get(s), dict) and key in node[s] for s in PARAM_SECTIONS)
