"""The Ray dashboard line: where a sweep's dashboard is and how to sign in to it.

Ray turns on token authentication for a new local cluster (``RAY_AUTH_MODE=token``, the token
in ``~/.ray/auth_token`` unless ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` says otherwise),
so the dashboard opens on "Authentication Token Required" until the token is pasted there.
The line says where the token is and which command prints it, never the token itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_PORT = 8265  # Ray's; with no --dashboard-port Ray takes the next free one after it
DEFAULT_HOST = "127.0.0.1"
TOKEN_FILE = "~/.ray/auth_token"  # where Ray writes (and `ray get-auth-token` reads) the token


def token_auth(environ: Mapping[str, str] | None = None, *, new_local: bool = False) -> bool:
    """Whether the dashboard asks for a token: ``RAY_AUTH_MODE=token`` (Ray sets it when it
    starts a local cluster); ``new_local``: a local cluster not started yet, on by default."""
    mode = (os.environ if environ is None else environ).get("RAY_AUTH_MODE")
    return (mode or ("token" if new_local else "")).lower() == "token"


def token_hint(environ: Mapping[str, str] | None = None) -> str:
    """Where the token is, in words: the variable or file that holds it, never its value."""
    env = os.environ if environ is None else environ
    if env.get("RAY_AUTH_TOKEN"):
        return "sign in with the token in $RAY_AUTH_TOKEN"
    path = env.get("RAY_AUTH_TOKEN_PATH") or TOKEN_FILE
    return f"sign in with the token in {path}, which `ray get-auth-token` prints"


def dashboard_line(
    url: str,
    *,
    asked_port: int | None = None,
    cluster: bool = False,
    environ: Mapping[str, str] | None = None,
) -> str:
    """``ray      dashboard URL (how to sign in)``, printed when Ray has started.

    ``asked_port``: the ``--dashboard-port`` given, None for Ray's default; when the URL has
    another port (the default was taken) the line says so. ``cluster``: a joined cluster's
    dashboard, whose token is the cluster's (cluster/README.md says where it lives).
    """
    notes = []
    port = _port(url)
    if not cluster and asked_port is None and port is not None and port != DEFAULT_PORT:
        notes.append(f"{DEFAULT_PORT} was taken")
    if token_auth(environ):
        if cluster:
            notes.append(
                "sign in with the cluster's token, which `ray get-auth-token` prints on the "
                "head; see cluster/README.md"
            )
        else:
            notes.append(token_hint(environ))
    where = f"dashboard {url}" + (" of the cluster" if cluster else "")
    return f"ray      {where}" + (f" ({'; '.join(notes)})" if notes else "")


def planned_line(
    *,
    dashboard: bool,
    address: str | None,
    port: int | None,
    host: str = DEFAULT_HOST,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """What ``abl search --dry-run`` says about the dashboard the sweep would have; None for
    ``--no-dashboard`` on this machine."""
    if address:
        return (
            f"ray      joins the cluster at {address}; its dashboard is the head's (port "
            f"{DEFAULT_PORT} unless it was started with another), with the cluster's token: "
            "see cluster/README.md"
        )
    if not dashboard:
        return None
    where = f"http://{host}:{port or DEFAULT_PORT}"
    notes = [] if port else [f"or the next free port if {DEFAULT_PORT} is taken"]
    if token_auth(environ, new_local=True):
        notes.append(token_hint(environ))
    return f"ray      dashboard {where} while the sweep runs" + (
        f" ({'; '.join(notes)})" if notes else ""
    )


def _port(url: str) -> int | None:
    tail = url.rstrip("/").rpartition(":")[2]
    return int(tail) if tail.isdigit() else None
