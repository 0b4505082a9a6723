"""The Ray dashboard of a running sweep, opened in headless Chromium as a new user would.

The sweep prints the dashboard's URL and where the token is before its first trial starts;
the user gets the token with ``ray get-auth-token``, pastes it into the dashboard's "Token
Required" dialog, and the Actors page lists the sweep's trials by name. Chromium is driven
over the DevTools protocol (aiohttp's websocket client, which Ray installs); a screenshot
of the Actors page goes to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from abl.results.store import read_trials
from tests.e2e.faults import Sweep, project, wait_until
from tests.e2e.procs import free_port, stop_group
from tests.e2e.test_search_cli import ARTIFACTS, CHROMIUM_FLAGS

pytestmark = pytest.mark.ray

# The MLflow test's flags, less the virtual time budget: Chromium would exit once it is spent.
FLAGS = [f for f in CHROMIUM_FLAGS if not f.startswith("--virtual-time-budget")]
LINE = re.compile(r"^ray      dashboard (http://127\.0\.0\.1:(\d+)) \((.*)\)$", re.M)


class DevTools:
    """One page of a headless Chromium, over the DevTools protocol's websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        message = await self.answer(method, **params)
        assert "error" not in message, message
        return message.get("result", {})

    async def answer(self, method: str, **params: Any) -> dict[str, Any]:
        """The whole answer to one call: its result, or its error."""
        n = next(self.ids)
        await self.ws.send_json({"id": n, "method": method, "params": params})
        while True:  # events come in between; the answer carries our id
            message = await self.ws.receive_json(timeout=60)
            if message.get("id") == n:
                return message

    async def text(self) -> str:
        """The page's text; empty while it navigates (the dashboard reloads after sign-in, and
        an evaluation that the reload overtakes answers "Inspected target navigated")."""
        message = await self.answer(
            "Runtime.evaluate", expression="document.body ? document.body.innerText : ''"
        )
        if "navigated" in message.get("error", {}).get("message", ""):
            return ""
        assert "error" not in message, message
        return str(message["result"]["result"].get("value", ""))

    async def wait_text(self, *needles: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = await self.text()
            if all(n in text for n in needles):
                return text
            await asyncio.sleep(0.5)
        raise AssertionError(f"the page never showed {needles}; it shows:\n{text[:3000]}")


@contextlib.asynccontextmanager
async def chromium_page(profile: Path) -> AsyncIterator[DevTools]:
    import aiohttp

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("this test needs Debian's chromium (apt-get install chromium)")
    port = free_port()
    proc = subprocess.Popen(
        [
            exe, *FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:

        def page_socket() -> str | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as resp:
                pages = [t for t in json.loads(resp.read()) if t.get("type") == "page"]
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        url = wait_until("Chromium's DevTools", page_socket, timeout=60)
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
            page = DevTools(ws)
            await page.call("Page.enable")
            await page.call("Runtime.enable")
            yield page
    finally:
        stop_group(proc, signal.SIGTERM, timeout=10)


async def sign_in_and_list_actors(
    url: str, token: str, names: list[str], shot: Path, profile: Path
) -> str:
    """Open the Actors page, paste ``token`` into the dialog, wait for ``names``."""
    async with chromium_page(profile) as page:
        await page.call("Page.navigate", url=f"{url}/#/actors")
        await page.wait_text("Authentication Token Required", "ray get-auth-token")
        await page.call(
            "Runtime.evaluate",
            expression="document.querySelector('input[placeholder*=\"authentication token\"]')"
            ".focus()",
        )
        await page.call("Input.insertText", text=token)  # what pasting does
        for kind in ("keyDown", "keyUp"):
            await page.call(
                "Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                windowsVirtualKeyCode=13, nativeVirtualKeyCode=13,
            )  # fmt: skip
        text = await page.wait_text("Repr", *names)
        shot.parent.mkdir(exist_ok=True)
        png = await page.call("Page.captureScreenshot", format="png")
        shot.write_bytes(base64.b64decode(png["data"]))
        return text


def test_a_running_sweeps_dashboard_opens_with_its_token_and_names_the_trials(
    tmp_path, monkeypatch
):
    cwd = project(tmp_path, epochs=400, trials=2, length=3000)  # long: it runs while we look
    token_file = tmp_path / "ray-token"
    token_file.write_text(secrets.token_hex(32))
    env = {"RAY_AUTH_TOKEN_PATH": str(token_file)}  # the user's token, not ~/.ray's
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)  # a new local cluster: token auth by default
    port = free_port()
    sweep = Sweep(cwd, "search", "rel.yaml", env=env, dashboard_port=port)
    try:
        # The line comes when Ray has started, before the first trial.
        found = wait_until("the dashboard line", lambda: LINE.search(sweep.output), sweep=sweep)
        url, shown_port, how = found.group(1), int(found.group(2)), found.group(3)
        assert shown_port == port and "taken" not in how
        assert how == f"sign in with the token in {token_file}, which `ray get-auth-token` prints"
        before = sweep.output[: found.start()]
        assert "trial " not in before, before  # no trial line before it
        token = token_file.read_text()
        assert token not in sweep.output

        # The command the line names prints that token in the user's environment.
        ray_bin = Path(sys.executable).with_name("ray")
        printed = subprocess.run(
            [str(ray_bin), "get-auth-token"], env=sweep.env, capture_output=True, text=True
        )
        assert printed.returncode == 0 and printed.stdout.strip() == token, printed.stderr

        def running() -> list[str]:
            (run_dir,) = (cwd / "runs" / "rel").iterdir()
            rows = read_trials(run_dir).to_pylist()
            ids = [r["trial_id"] for r in rows if r["status"] == "running"]
            return sorted(ids) if len(ids) == 2 else []

        trials = wait_until("both trials to run", running, timeout=240, sweep=sweep)
        names = [f"rel {t}" for t in trials]
        # Without the token the dashboard's API answers 401.
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{url}/api/v0/actors", timeout=10)
        assert denied.value.code == 401

        shot = ARTIFACTS / "ray-dashboard-actors.png"
        look = sign_in_and_list_actors(url, token, names, shot, tmp_path / "chromium")
        text = asyncio.run(asyncio.wait_for(look, 240))
        assert "ImplicitFunc" in text and all(n in text for n in names)
        assert shot.stat().st_size > 10_000
        assert sweep.proc.poll() is None, "the sweep ended before the browser looked"
    finally:
        stop_group(sweep.proc, signal.SIGINT, timeout=60)
        sweep.cleanup()
