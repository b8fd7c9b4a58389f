"""The guard: swap tokens are checked from the headers before any body byte is read, swaps are
disabled by an empty, whitespace or placeholder API_TOKEN, and every route has a body limit."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from flightdelay.serving.app import create_app
from flightdelay.serving.guard import BODY_LIMIT
from tests.helpers.serving import (
    TOKEN,
    register_tiny,
    rss_bytes,
    service_env,
    settings_for,
    uvicorn_server,
)

NBSP = "\u00a0"


@pytest.mark.parametrize("token", ["", "   ", "change-me-api-token", "CHANGE-ME"])
@pytest.mark.parametrize("bearer", ["Bearer  ", f"Bearer {NBSP}", "Bearer x", None])
def test_disabled_swaps_answer_403_with_the_reason(
    tmp_path: Path, token: str, bearer: str | None
) -> None:
    settings = settings_for(tmp_path, api_token=token)
    headers = {"Authorization": bearer.encode()} if bearer is not None else {}
    with TestClient(create_app(settings)) as client:
        for path in ("/model", "/model/reload"):
            r = client.post(path, json={"version": 1}, headers=headers)
            assert r.status_code == 403 and "swaps are disabled" in r.json()["detail"], r.text


def test_disabled_swaps_log_one_warning_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings_for(tmp_path, api_token=""))
    with caplog.at_level(logging.WARNING, logger="flightdelay.serving.guard"), TestClient(app) as c:
        c.post("/model/reload")
        c.post("/model/reload")
    warnings = [r for r in caplog.records if "swaps are disabled" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize(
    ("bearer", "status"),
    [
        (None, 401),
        ("Basic abc", 401),
        ("Bearer", 401),
        ("Bearer  ", 401),
        (f"Bearer {NBSP}", 403),
        ("Bearer nope", 403),
        (f"Bearer {TOKEN}x", 403),
    ],
)
def test_missing_401_wrong_403(tmp_path: Path, bearer: str | None, status: int) -> None:
    headers = {"Authorization": bearer.encode()} if bearer is not None else {}
    with TestClient(create_app(settings_for(tmp_path))) as client:
        r = client.post("/model", json={"version": 1}, headers=headers)
        assert r.status_code == status, r.text
        assert ("www-authenticate" in r.headers) == (status == 401)


def call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """One request straight to the ASGI app, with a never-ending body -> (status, receive calls)."""
    calls = 0
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "root_path": "",
        "scheme": "http",
        "server": ("x", 80),
        "client": ("y", 1),
    }
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], calls


def test_refused_before_a_body_byte_is_read(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path))
    huge = [(b"content-length", b"209715200")]
    assert call(app, "POST", "/model", huge) == (401, 0)
    wrong = [*huge, (b"authorization", b"Bearer nope")]
    assert call(app, "POST", "/model/reload", wrong) == (403, 0)
    right = [*huge, (b"authorization", f"Bearer {TOKEN}".encode())]
    assert call(app, "POST", "/model", right) == (413, 0)  # the route's limit, from the header
    assert call(app, "GET", "/health", huge) == (413, 0)
    assert call(app, "POST", "/predict", huge) == (503, 0)  # no model yet: nothing read
    chunked = [(b"authorization", f"Bearer {TOKEN}".encode())]  # no length: read up to the limit
    status, calls = call(app, "POST", "/model", chunked)
    assert status == 413 and calls == BODY_LIMIT // 65536 + 1


@pytest.mark.slow  # 200 MB through a real socket
def test_200_mb_unauthenticated_post_is_refused_unread(tmp_path: Path) -> None:
    """A real uvicorn process: the answer comes before the body, and RSS does not grow."""
    settings = settings_for(tmp_path)
    register_tiny(settings)
    with uvicorn_server(tmp_path, service_env(settings)) as (url, proc):
        end = time.monotonic() + 60
        while httpx.get(f"{url}/ready").status_code != 200 and time.monotonic() < end:
            time.sleep(0.1)  # the load imports MLflow and sklearn: measure after it
        port = int(url.rsplit(":", 1)[1])
        before = rss_bytes(proc.pid)
        size = 200 * 1024 * 1024
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = f"POST /model HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
            sock.sendall(f"{head}Content-Type: application/json\r\n\r\n".encode())
            sock.settimeout(5)
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 401"), answer
            sent, chunk = 0, b"x" * (1 << 20)
            start = time.monotonic()
            try:  # keep pushing the body: the server must not buffer it
                while sent < size and time.monotonic() - start < 10:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
        time.sleep(0.3)
        growth = rss_bytes(proc.pid) - before
        assert growth < 20 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB"
