"""The one exception type for user-facing mistakes."""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Iterable
from typing import Any

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
