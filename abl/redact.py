"""Keep credentials out of what abl prints and writes (terminal, run directory, MLflow)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# scheme://user:password@ anywhere in a text (a library's error message quoting a URL)
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@")


def redact(uri: str) -> str:
    """``uri`` with its password replaced by ``***``: ``postgresql://u:***@db/mlflow``."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:  # not a URL (e.g. a bad port): nothing to find
        return uri
    if not password:
        return uri
    netloc = parts.netloc.replace(f":{password}@", f":{MASK}@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _USERINFO.sub(rf"\g<1>{MASK}@", text)


def is_redacted(uri: str) -> bool:
    """Whether ``uri`` lost its password to :func:`redact` (then it cannot be used as is)."""
    try:
        return urlsplit(uri).password == MASK
    except ValueError:
        return False
