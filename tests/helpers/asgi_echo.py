"""A minimal ASGI app for protocol tests: answers the byte count of the body it read, or
records that the client went away (GET /events lists what happened)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

EVENTS: list[str] = []


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/events":
        body = ",".join(EVENTS).encode()
    else:
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                EVENTS.append("disconnect")
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        EVENTS.append(f"read {size}")
        body = str(size).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
