"""The edge of the service, before any route reads a byte of the body: the bearer token of the
swap endpoints (POST /model, POST /model/reload) is checked from the headers alone, and every
route has a body limit (413 from `Content-Length` at once, or as soon as a chunked body passes
it). /predict keeps its own, larger limit (API_MAX_BODY_BYTES) in its raw handler.

A plain ASGI middleware: /predict passes through after one comparison.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SWAP_ROUTES = frozenset({"/model", "/model/reload"})
BODY_LIMIT = 64 * 1024  # every route but /predict: 413 beyond
PLACEHOLDER = "change-me"
DISCONNECTED = 499  # what a request whose client left is counted as (nginx's convention)


def swaps_disabled(token: str) -> str | None:
    """Why the swap endpoints are disabled with this API_TOKEN (empty, whitespace only or a
    `change-me...` placeholder), or None when they are enabled."""
    if not token.strip():
        return "swaps are disabled: API_TOKEN is empty (set a secret API_TOKEN to enable them)"
    if token.strip().lower().startswith(PLACEHOLDER):
        return "swaps are disabled: API_TOKEN is a change-me placeholder (set a secret API_TOKEN)"
    return None


def check_bearer(authorization: bytes | None, token: str) -> tuple[int, str] | None:
    """(status, reason) refusing `authorization`, or None when it is `Bearer <token>`.

    403 when swaps are disabled (whatever the header), 401 without a bearer token, 403 for a
    wrong one. The comparison is constant-time on bytes; as swaps need a token that is not blank,
    a bearer made of whitespace (non-breaking spaces included) never matches.
    """
    disabled = swaps_disabled(token)
    if disabled:
        return 403, disabled
    scheme, _, given = (authorization or b"").partition(b" ")
    if scheme.lower() != b"bearer" or not given.strip(b" \t"):
        return 401, "missing bearer token (Authorization: Bearer <API_TOKEN>)"
    given = given.strip(b" \t")
    if not secrets.compare_digest(given, token.encode()):
        return 403, "wrong token"
    return None


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header `name` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def content_length(scope: Scope) -> int | None:
    """The declared body length; -1 when the header is malformed; None without one."""
    raw = header(scope, b"content-length")
    if raw is None:
        return None
    return int(raw) if raw.isdigit() and len(raw) < 20 else -1


async def send_error(
    send: Send, status: int, detail: str, headers: list[Any] | None = None
) -> None:
    """Answer `{"detail": detail}` with `status` (the service's one error shape)."""
    body = orjson.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_bounded(receive: Receive, limit: int, first: bytes = b"") -> bytes | None:
    """The whole body (after `first`, a chunk the caller already received), or None once it
    passes `limit` bytes (reading stops there). Raises ClientDisconnect when the client leaves
    mid-body."""
    from starlette.requests import ClientDisconnect

    chunks = [first] if first else []
    size = len(first)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class GuardMiddleware:
    """Token and body limits ahead of the routes (see the module docstring)."""

    def __init__(self, app: ASGIApp, token: str, limit: int = BODY_LIMIT) -> None:
        self.app, self.token, self.limit = app, token, limit
        disabled = swaps_disabled(token)
        if disabled:
            log.warning("%s", disabled)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/predict":
            await self.app(scope, receive, send)
            return
        refused = self.refuse(scope)
        if refused is not None:
            status, detail = refused
            extra = [(b"www-authenticate", b"Bearer")] if status == 401 else None
            await send_error(send, status, detail, extra)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS") and not content_length(scope):
            await self.app(scope, receive, send)  # no body announced: nothing to buffer
            return
        from starlette.requests import ClientDisconnect

        try:
            body = await read_bounded(receive, self.limit)
        except ClientDisconnect:  # the client left: nobody reads an answer, none is an error
            await send_error(send, DISCONNECTED, "client disconnected")
            return
        if body is None:
            await send_error(send, 413, f"body larger than {self.limit} bytes (this route's limit)")
            return
        await self.app(scope, replaying(body, receive), send)

    def refuse(self, scope: Scope) -> tuple[int, str] | None:
        """Why to answer at once from the headers (token, declared length), or None."""
        if scope["method"] == "POST" and scope["path"] in SWAP_ROUTES:
            refused = check_bearer(header(scope, b"authorization"), self.token)
            if refused is not None:
                return refused
        length = content_length(scope)
        if length is not None and length < 0:
            return 400, "malformed Content-Length"
        if length is not None and length > self.limit:
            return 413, f"body larger than {self.limit} bytes (this route's limit)"
        return None


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands out `body` once, then defers to the original (disconnects)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
