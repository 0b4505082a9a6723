"""The one exception type for user-facing mistakes."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AblError(Exception):
    """A mistake in what the user gave (space file, override, flag, data path).

    The CLI prints the message on one line and exits with status 2, without a traceback.
    Messages state the rule, then what was given, then where:
    ``pe_type must be one of none, randpe, sinpe, rope; got 'roep' (spaces/att.yaml, grid.model.pe_type)``.
    A message that quotes another library's multi-line text is folded onto one line.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def one_of(choices: Iterable[str]) -> str:
    """Format allowed values as ``a, b, c``."""
    return ", ".join(str(c) for c in choices)
