"""Typed config dataclasses: one per component, a help text on every field.

A component declares its knobs as a dataclass whose fields use :func:`param`; the trial config
is checked against it (unknown keys and wrong types are errors, never ignored) and
``abl trainables`` lists every field with its default and help.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from abl.errors import AblError, did_you_mean, one_of


def param(default: Any, help: str) -> Any:
    """A dataclass field with a default and a help text (shown by ``abl trainables``)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ParamInfo:
    """One knob of a component: its name, type, default, allowed values and help."""

    name: str
    type: Any
    default: Any
    help: str

    @property
    def choices(self) -> tuple[Any, ...] | None:
        """The allowed values of a ``Literal`` field, else None."""
        return get_args(self.type) if get_origin(self.type) is Literal else None

    @property
    def type_name(self) -> str:
        if self.choices is not None:
            return "|".join(str(c) for c in self.choices)
        return getattr(self.type, "__name__", str(self.type))


def params_of(cls: type) -> list[ParamInfo]:
    """The fields of a config dataclass as :class:`ParamInfo`, in declaration order."""
    hints = typing.get_type_hints(cls)
    return [
        ParamInfo(f.name, hints[f.name], f.default, f.metadata.get("help", ""))
        for f in dataclasses.fields(cls)
    ]


def check_value(info: ParamInfo, value: Any, where: str) -> Any:
    """Return ``value`` converted to the field's type, or raise an AblError saying what is allowed."""
    choices = info.choices
    if choices is not None:
        if value in choices:
            return value
        hint = did_you_mean(str(value), [str(c) for c in choices])
        raise AblError(
            f"{info.name} must be one of {one_of(choices)}; got {value!r}{hint} ({where})"
        )
    tp = info.type
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif _is_optional_str(tp):
        if value is None or isinstance(value, str):
            return value
    else:
        return value
    raise AblError(f"{info.name} must be {info.type_name}; got {value!r} ({where})")


def _is_optional_str(tp: Any) -> bool:
    return set(get_args(tp)) == {str, type(None)}


def check_keys(cls: type, keys: list[str], *, section: str, where: str) -> None:
    """Raise an AblError for the first key that ``cls`` has no field for."""
    known = [p.name for p in params_of(cls)]
    for key in keys:
        if key not in known:
            raise AblError(
                f"unknown parameter '{section}.{key}'; {section} takes {one_of(known)}"
                f"{did_you_mean(key, known)} ({where})"
            )


def build(cls: type, values: dict[str, Any], *, section: str, where: str = "trial config") -> Any:
    """Instantiate config dataclass ``cls`` from ``values``, checking every key and value."""
    check_keys(cls, list(values), section=section, where=where)
    infos = {p.name: p for p in params_of(cls)}
    checked = {k: check_value(infos[k], v, where) for k, v in values.items()}
    return cls(**checked)


Rule = tuple[bool, str, Any, str]  # (holds, the rule, what was given, where: "data.length")


def require(rules: list[Rule]) -> None:
    """Raise an AblError for the first rule that does not hold: ``rule; got X (where)``."""
    for ok, rule, given, where in rules:
        if not ok:
            raise AblError(f"{rule}; got {given!r} ({where})")


def defaults(cls: type) -> dict[str, Any]:
    """``{field: default}`` of a config dataclass."""
    return {p.name: p.default for p in params_of(cls)}
