"""Request ids and JSON log lines (serving/telemetry.py), and the worker share's files."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from flightdelay.serving.telemetry import (
    REQUEST_ID,
    JsonFormatter,
    RequestIdMiddleware,
    RequestIds,
)
from flightdelay.serving.workers import WorkerShare


def test_ids_are_unique_and_a_plausible_incoming_id_is_kept() -> None:
    ids = RequestIds()
    made = {ids.new() for _ in range(10_000)}
    assert len(made) == 10_000
    assert ids.of([(b"x-request-id", b"abc-123.x:y")]) == b"abc-123.x:y"
    assert RequestIds().new()[:9] != ids.new()[:9]  # another process, another prefix


@pytest.mark.parametrize("bad", [b"", b"a b", b"<script>", b"x" * 129, "é".encode()])
def test_an_implausible_incoming_id_is_replaced(bad: bytes) -> None:
    ids = RequestIds()
    got = ids.of([(b"x-request-id", bad)])
    assert got != bad and got.startswith(ids.prefix.encode())


def run(ids: RequestIds, headers: list[tuple[bytes, bytes]]) -> tuple[list[Any], list[str | None]]:
    sent: list[Any] = []
    seen: list[str | None] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(REQUEST_ID.get())
        logging.getLogger("flightdelay.test").warning("inside")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "headers": headers, "method": "GET", "path": "/"}
    asyncio.run(RequestIdMiddleware(inner, ids)(scope, receive, send))
    return sent, seen


def test_middleware_echoes_the_id_and_holds_it_while_the_request_runs() -> None:
    ids = RequestIds()
    handler = logging.StreamHandler()
    records: list[str] = []
    handler.emit = lambda record: records.append(JsonFormatter().format(record))  # type: ignore[method-assign]
    logger = logging.getLogger("flightdelay.test")
    logger.addHandler(handler)
    try:
        sent, seen = run(ids, [(b"x-request-id", b"from-nginx-1")])
    finally:
        logger.removeHandler(handler)
    assert (b"x-request-id", b"from-nginx-1") in sent[0]["headers"]
    assert seen == ["from-nginx-1"] and REQUEST_ID.get() is None  # reset afterwards
    line = json.loads(records[0])
    assert line["request_id"] == "from-nginx-1" and line["msg"] == "inside"
    assert line["level"] == "WARNING" and line["logger"] == "flightdelay.test"
    sent, seen = run(ids, [])
    made = dict(sent[0]["headers"])[b"x-request-id"]
    assert made.startswith(ids.prefix.encode()) and seen == [made.decode()]


def test_a_traceback_stays_on_one_line() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), None)
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert "ValueError: boom" in entry["exc"] and "request_id" not in entry
    assert entry["ts"].endswith("Z") and "T" in entry["ts"]


def test_worker_share_sees_siblings_and_keeps_dead_ones(tmp_path: Path) -> None:
    a, b = WorkerShare(tmp_path, 1), WorkerShare(tmp_path, 2)
    a.write({"requests": [["POST", "/predict", 200, 5]]})
    b.write({"requests": [["POST", "/predict", 200, 7]]})
    assert b.others() == [{"requests": [["POST", "/predict", 200, 5]]}]
    b.start(lambda: {"requests": [["POST", "/predict", 200, 9]]})
    b.stop(lambda: {"requests": [["POST", "/predict", 200, 10]]})
    assert a.others() == [{"requests": [["POST", "/predict", 200, 10]]}]
    assert not list(tmp_path.glob("*.tmp"))
