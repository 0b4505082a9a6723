"""The one exception type for user-facing mistakes."""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Iterable
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

MAX_MESSAGE = 2000  # characters of one error line; the end (where) is always kept


class AblError(Exception):
    """A mistake in what the user gave (space file, override, flag, data path).

    The CLI prints the message on one line and exits with status 2, without a traceback.
    Messages state the rule, then what was given, then where:
    ``pe_type must be one of none, randpe, sinpe, rope; got 'roep' (spaces/att.yaml, grid.model.pe_type)``.
    A message that quotes another library's multi-line text is folded onto one line.
    """

    def __init__(self, message: object = "") -> None:
        text = " ".join(str(message).split())
        if len(text) > MAX_MESSAGE:  # a value quoted whole (an expanded YAML alias, a huge list)
            cut = len(text) - MAX_MESSAGE
            text = f"{text[: MAX_MESSAGE - 400]} ...[{cut} characters cut]... {text[-400:]}"
        super().__init__(text)


_BRIEF = reprlib.Repr()  # keyword arguments need Python 3.12
_BRIEF.maxlevel, _BRIEF.maxdict, _BRIEF.maxlist, _BRIEF.maxtuple = 2, 4, 6, 6
_BRIEF.maxset, _BRIEF.maxstring, _BRIEF.maxother = 6, 80, 80


def brief(value: Any) -> str:
    """``repr(value)`` cut to a readable size: errors quote what was given, never all of it."""
    return _BRIEF.repr(value)


# urllib3 wraps why a request failed in its retry error: "HTTPConnectionPool(host=..., port=...):
# Max retries exceeded with url: /api/... (Caused by NewConnectionError("HTTPConnection(...):
# Failed to establish a new connection: [Errno 111] Connection refused"))".
_RETRIES = re.compile(
    r"\S*ConnectionPool\([^)]*\): Max retries exceeded with url: \S+ \(Caused by \w+\((.*)\)\)",
    re.S,
)


def error_line(exc: BaseException) -> str:
    """``Type: message`` on one line, an HTTP client's retry wrapper cut to its cause's last
    words: ``MlflowException: API request to http://host/api/... failed with exception
    [Errno 111] Connection refused``."""

    def cause(match: re.Match[str]) -> str:
        return match.group(1).rpartition(": ")[2].strip("\"'")

    text = " ".join(_RETRIES.sub(cause, str(exc)).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class AblWarning(RuntimeWarning):
    """Something went wrong that the sweep survives (a tracking store down, a config it could
    not record); the CLI prints it as one ``abl: warning: ...`` line."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def one_of(choices: Iterable[str]) -> str:
    """Format allowed values as ``a, b, c``."""
    return ", ".join(str(c) for c in choices)


# pydantic's wording for the common type errors, said the way a space file's reader thinks.
_PLAIN = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping of keys to values",
    "list_type": "must be a list",
}
_BOUND_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
_UNION_TAGS = {"bool", "int", "float", "str", "none"}  # pydantic names the union member it tried


def validation_message(
    exc: Any,
    model: type,
    *,
    where: str,
    noun: str = "key",
    prefix: str = "",
    hidden: Iterable[str] = (),
) -> str:
    """The first error of a pydantic ``ValidationError`` as abl's one line: rule, given, where.

    ``model`` is the pydantic model that was validated: it names the keys allowed beside an
    unknown one, and a field's choices and bounds. ``prefix`` goes before every key (``model``
    when a model's knobs are validated alone), ``noun`` says what a key is (a space file's
    ``key``, a trial's ``parameter``) and ``hidden`` are fields no user sets. The space file and
    every trial config are checked through this one formatter:

    ``unknown parameter 'model.pe_typ'; allowed here: d_model, ..., pe_type; did you mean
    'model.pe_type'? (trial config, model.pe_typ)``,
    ``train.lr must be > 0; got -1 (spaces/quickstart.yaml, train.lr)``.
    """
    err = exc.errors()[0]
    parts = [str(p) for p in err["loc"]]
    key = ".".join([prefix, *parts] if prefix else parts)
    given = brief(err.get("input"))
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _at(model, parts[:-1])
        allowed = [k for k in _keys(owner) if k not in set(hidden)]
        parent = key.rpartition(".")[0]
        close = difflib.get_close_matches(parts[-1], allowed, n=1, cutoff=0.6)
        hint = f"; did you mean '{parent + '.' if parent else ''}{close[0]}'?" if close else ""
        return f"unknown {noun} '{key}'; allowed here: {one_of(allowed)}{hint} ({where}, {key})"
    if kind == "missing":
        return f"missing required {noun} '{key}' ({where})"
    if len(parts) > 1 and parts[-1] in _UNION_TAGS:
        key = key.rpartition(".")[0]
        hint = ", or make it a grid axis" if parts[0] in ("fixed", "when") else ""
        return (
            f"{key} takes one value (a number, a string, true/false or null){hint}; "
            f"got {given} ({where}, {key})"
        )
    field = _at(model, parts)
    choices = _choices(getattr(field, "annotation", None))
    if kind == "literal_error" and choices:
        hint = did_you_mean(str(err.get("input")), [str(c) for c in choices])
        return f"{key} must be one of {one_of(choices)}; got {given}{hint} ({where}, {key})"
    rule = range_rule(getattr(field, "metadata", ()))
    ctx = err.get("ctx") or {}
    if kind in _BOUND_ERRORS and rule:
        msg = f"must be {rule}"
    elif kind == "too_short":
        msg = f"must have at least {ctx.get('min_length')} item(s)"
    elif kind == "string_pattern_mismatch":
        msg = f"must match {ctx.get('pattern')}"
    else:
        msg = _PLAIN.get(kind) or str(err["msg"]).replace("Input should be", "must be")
    return f"{key} {msg.replace('Value error, ', '')}; got {given} ({where}, {key})"


def range_rule(metadata: Iterable[Any]) -> str:
    """The bounds among a pydantic field's constraints as ``>= 1`` or ``in (0, 1]``; "" if none."""
    low = high = None
    for c in metadata:
        for attr, side in (("ge", "["), ("gt", "(")):
            if getattr(c, attr, None) is not None:
                low = (side, getattr(c, attr))
        for attr, side in (("le", "]"), ("lt", ")")):
            if getattr(c, attr, None) is not None:
                high = (side, getattr(c, attr))
    if low and high:
        return f"in {low[0]}{_num(low[1])}, {_num(high[1])}{high[0]}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {_num(low[1])}"
    if high:
        return f"{'<=' if high[0] == ']' else '<'} {_num(high[1])}"
    return ""


def _num(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _choices(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_origin(annotation) is Literal else ()


def _unwrap(annotation: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` -> ``X``; a field's annotation."""
    annotation = getattr(annotation, "annotation", annotation)  # a pydantic FieldInfo
    while True:
        origin, args = get_origin(annotation), get_args(annotation)
        if origin is Annotated:
            annotation = args[0]
        elif origin in (Union, UnionType) and len(args) == 2 and type(None) in args:
            annotation = next(a for a in args if a is not type(None))
        else:
            return annotation


def _at(model: Any, parts: list[str]) -> Any:
    """The pydantic field (or model) at a location of an error, walking nested models, lists
    and dicts; None where the walk cannot follow."""
    node: Any = model
    for part in parts:
        ann = _unwrap(node)
        fields = getattr(ann, "model_fields", None)
        if isinstance(fields, dict):
            node = fields.get(part) or next(
                (f for f in fields.values() if getattr(f, "alias", None) == part), None
            )
        elif get_origin(ann) in (list, tuple, dict) and get_args(ann):
            node = get_args(ann)[-1] if get_origin(ann) is dict else get_args(ann)[0]
        else:
            return None
        if node is None:
            return None
    return node


def _keys(model: Any) -> list[str]:
    fields = getattr(_unwrap(model), "model_fields", None) or {}
    return [getattr(f, "alias", None) or name for name, f in fields.items()]
