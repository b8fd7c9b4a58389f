"""The service's logs and request ids: one JSON object per log line, each naming the request it
belongs to.

- **Request ids.** A request keeps the `X-Request-ID` it came with (nginx sets one for every
  request it forwards, so a line in nginx's log and the replica's share it) when it is a
  plausible id (1-128 characters of letters, digits and `-._:`); otherwise the service makes one
  (a per-process random prefix and a counter: unique, and cheap enough for the hot path). The
  answer carries it back in `x-request-id`, and :data:`REQUEST_ID` holds it while the request
  runs, so every log line written for the request names it.
- **JSON logs.** :func:`install_json_logging` gives uvicorn's and the service's loggers one
  formatter: `{"ts", "level", "logger", "msg", "request_id"?, "exc"?}` per line (the traceback,
  when there is one, is one string field, so a line is always one record). The per-request
  access line is left to nginx (`access_log` is off in every launcher): it costs the hot path.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from itertools import count
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER = b"x-request-id"
REQUEST_ID: ContextVar[str | None] = ContextVar("flightdelay_request_id", default=None)
_VALID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "flightdelay")


class RequestIds:
    """Makes this process's request ids: `<8 random hex>-<counter in hex>`."""

    def __init__(self) -> None:
        self.prefix = os.urandom(4).hex() + "-"
        self.counter = count(1)

    def new(self) -> bytes:
        return (self.prefix + format(next(self.counter), "x")).encode()

    def of(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The request's own `X-Request-ID` when it is a plausible id, else a new one."""
        for name, value in headers:
            if name == HEADER:
                return value if _VALID.fullmatch(value) else self.new()
        return self.new()


class RequestIdMiddleware:
    """A plain ASGI middleware: the request's id in :data:`REQUEST_ID` while it runs and in the
    answer's `x-request-id` (see the module docstring)."""

    def __init__(self, app: ASGIApp, ids: RequestIds) -> None:
        self.app, self.ids = app, ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = self.ids.of(scope["headers"])
        token = REQUEST_ID.set(rid.decode())

        def send_with_id(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, rid)]
            return send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO 8601 with ms), level, logger, msg, and
    request_id while a request runs, exc with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = REQUEST_ID.get()
        if rid is not None:
            entry["request_id"] = rid
        if record.exc_text:  # as a filter left it (ScrubFilter masks credentials there)
            entry["exc"] = record.exc_text
        elif record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def install_json_logging() -> None:
    """Give every handler of uvicorn's and the service's loggers (and the root logger) the JSON
    formatter; loggers without a handler get one on stderr. Idempotent."""
    formatter = JsonFormatter()
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for logger in (root, *(logging.getLogger(name) for name in LOGGERS)):
        for handler in logger.handlers:
            handler.setFormatter(formatter)
