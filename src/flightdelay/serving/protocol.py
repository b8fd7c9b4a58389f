"""uvicorn's httptools protocol with the slow-client and header limits uvicorn lacks.

uvicorn (0.54) bounds neither the size of a request's head nor the time a client may take to
send it or its body: a client sending one byte a second holds a connection (and a request task
waiting in `receive()`) for as long as it likes, and 8 MiB of headers are parsed and kept. This
protocol adds, per request:

- `API_MAX_HEADER_BYTES` (default 64 KiB) for the request line and headers together: beyond it
  431 and the connection is closed, without parsing further;
- `API_HEADER_TIMEOUT_SECONDS` (default 10) from the first byte of a request to the end of its
  headers: beyond it 408 and close;
- `API_BODY_TIMEOUT_SECONDS` (default 30) from the end of the headers to the end of the body,
  a deadline rather than an idle timeout, so a trickle of bytes cannot keep it open: beyond it
  408 when nothing was answered yet, and the app sees `http.disconnect`.

- a request with `Expect: 100-continue` whose `Content-Length` passes `API_MAX_BODY_BYTES` (the
  largest body any route takes) gets 413 at once instead of `100 Continue` (uvicorn would send
  that as soon as the app reads, and /predict reads before it looks at the length).

nginx has the same limits in front of the stack's replicas; these hold for a replica reached
directly and for `flightdelay serve`. `serve` passes the class by its import path, so each
worker process builds it itself; the limits come from the service settings, read once per
process on the first connection.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

IMPORT_PATH = "flightdelay.serving.protocol:LimitedHttpToolsProtocol"
LINGER_SECONDS = 2.0  # a refused connection: from the half-close to the close


@lru_cache(maxsize=1)
def limits() -> tuple[int, float, float, int]:
    """(max head bytes, head timeout, body timeout, max body bytes) of this process's service
    settings."""
    from flightdelay.core.config import get_service_settings

    s = get_service_settings()
    head, body = s.api_header_timeout_seconds, s.api_body_timeout_seconds
    return s.api_max_header_bytes, head, body, s.api_max_body_bytes


def _answer(status: bytes, text: str) -> bytes:
    body = text.encode()
    return b"".join(
        (
            b"HTTP/1.1 " + status + b"\r\ncontent-type: application/problem+json\r\n",
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body),
            body,
        )
    )


HEAD_TOO_LARGE = _answer(
    b"431 Request Header Fields Too Large",
    '{"detail":"request line and headers larger than API_MAX_HEADER_BYTES"}',
)
HEAD_TIMEOUT = _answer(
    b"408 Request Timeout", '{"detail":"headers not complete within API_HEADER_TIMEOUT_SECONDS"}'
)
BODY_TOO_LARGE = _answer(
    b"413 Content Too Large",
    '{"detail":"declared Content-Length larger than API_MAX_BODY_BYTES: not continuing"}',
)
BODY_TIMEOUT = _answer(
    b"408 Request Timeout", '{"detail":"body not complete within API_BODY_TIMEOUT_SECONDS"}'
)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus a head size limit and head/body deadlines (module docstring).

    A request that arrives whole in one read (the usual case) arms no timer: the parser
    callbacks only note the phase and its start, and a deadline is armed after a read that
    leaves a request incomplete."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head, self.head_timeout, self.body_timeout, self.max_body = limits()
        self.head_bytes = 0
        self.declared = 0  # Content-Length of the request being parsed
        self.in_head = self.began_here = False  # a head is being parsed / began in this read
        self.refused = False
        self.phase: bytes | None = None  # HEAD_TIMEOUT or BODY_TIMEOUT while incomplete
        self.phase_start = 0.0
        self.deadline: asyncio.TimerHandle | None = None
        self.deadline_phase: bytes | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.phase, self.phase_start = HEAD_TIMEOUT, self.loop.time()  # a silent client too
        self._rearm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused or self.transport.is_closing():  # parse nothing more
            return
        self.began_here = False
        super().data_received(data)
        if self.in_head and not self.began_here:
            # A head that goes on over reads: count the raw bytes too, since httptools keeps a
            # header until its line ends (the callbacks alone would let one endless header in)
            self.head_bytes += len(data)
            if self.head_bytes > self.max_head:
                self._refuse(HEAD_TOO_LARGE)
        if self.phase is not self.deadline_phase:
            self._rearm()

    def _rearm(self) -> None:
        """Match the timer to the phase: none when no request is incomplete."""
        self._disarm()
        phase = self.phase
        if phase is not None:
            timeout = self.head_timeout if phase is HEAD_TIMEOUT else self.body_timeout
            delay = self.phase_start + timeout - self.loop.time()
            self.deadline = self.loop.call_later(max(delay, 0.0), self._expire, phase)
            self.deadline_phase = phase

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = self.deadline_phase = None

    def _expire(self, answer: bytes) -> None:
        """A deadline passed: answer `answer` when nothing is being answered on this connection,
        then drop the client; a request still waiting for its body sees `http.disconnect`."""
        self.deadline = self.deadline_phase = None
        if self.refused or self.transport.is_closing():
            return
        cycle = self.cycle
        if answer is BODY_TIMEOUT:
            quiet = cycle is not None and not cycle.response_started
        else:  # the head of a new request: the previous one, if any, must be answered in full
            quiet = cycle is None or cycle.response_complete
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if quiet:
            self._refuse(answer)
        else:
            self.transport.close()

    def _refuse(self, answer: bytes) -> None:
        """Answer `answer` and end the connection: a half-close at once (the client reads the
        answer to its end), the full close after LINGER_SECONDS, reading nothing meanwhile. A
        plain close with unread bytes would reset the connection and could lose the answer."""
        if self.refused or self.transport.is_closing():
            return
        self.refused = True
        self._disarm()
        self.transport.write(answer)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def on_message_begin(self) -> None:
        self.head_bytes = self.declared = 0
        self.in_head = self.began_here = True
        self.phase, self.phase_start = HEAD_TIMEOUT, self.loop.time()
        super().on_message_begin()

    # on_url and on_header replace uvicorn's (same bookkeeping, inlined: they run per header of
    # every request, so no extra call)
    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_bytes += len(url)
        if self.head_bytes > self.max_head:
            self._refuse(HEAD_TOO_LARGE)

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > self.max_head:
            self._refuse(HEAD_TOO_LARGE)
        elif name == b"content-length":
            self.declared = int(value) if value.strip().isdigit() else 0  # httptools checks it
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.expect_100_continue and self.declared > self.max_body:
            self._refuse(BODY_TOO_LARGE)
        if self.refused:  # refused within this read: start no request
            return
        self.phase, self.phase_start = BODY_TIMEOUT, self.loop.time()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self.phase = None
        if not self.refused:
            super().on_message_complete()
