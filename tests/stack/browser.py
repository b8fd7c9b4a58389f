"""Headless Chromium from Debian, driven over the DevTools protocol (no downloaded browser).

The DevTools protocol lets every request carry a header (the MLflow basic auth at nginx), which
`chromium --dump-dom` cannot: credentials in the URL reach the page but not its API calls.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
    "--remote-debugging-port=0",
]


def render(
    url: str, headers: dict[str, str], expect: list[str], screenshot: Path, timeout: float = 60
) -> tuple[str, str]:
    """Open `url` sending `headers` on every request; wait until the page's text holds every
    string of `expect` (or `timeout`), save a screenshot; returns (visible text, DOM)."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium missing: `make system-deps` installs Debian's package"
    profile = Path(tempfile.mkdtemp(prefix="fd-chromium-"))
    proc = subprocess.Popen(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < end, "chromium did not start"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        ids = itertools.count(1)
        with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:

            def call(method: str, **params: Any) -> dict[str, Any]:
                i = next(ids)
                ws.send(json.dumps({"id": i, "method": method, "params": params}))
                while True:
                    msg = json.loads(ws.recv(timeout=30))
                    if msg.get("id") == i:
                        assert "error" not in msg, msg
                        return msg["result"]  # type: ignore[no-any-return]

            def evaluate(expression: str) -> str:
                return str(call("Runtime.evaluate", expression=expression)["result"].get("value"))

            call("Network.enable")
            call("Network.setExtraHTTPHeaders", headers=headers)
            call("Page.navigate", url=url)
            end = time.monotonic() + timeout
            text = ""
            while time.monotonic() < end:
                text = evaluate("document.body ? document.body.innerText : ''")
                if all(e in text for e in expect):
                    break
                time.sleep(0.5)
            time.sleep(1)  # let the last rows paint before the screenshot
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(call("Page.captureScreenshot")["data"]))
            return text, evaluate("document.documentElement.outerHTML")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
