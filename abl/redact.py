"""Keep credentials out of what abl prints and writes (terminal, run directory, MLflow)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


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


def is_redacted(uri: str) -> bool:
    """Whether ``uri`` lost its password to :func:`redact` (then it cannot be used as is)."""
    try:
        return urlsplit(uri).password == MASK
    except ValueError:
        return False
