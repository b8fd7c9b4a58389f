"""The service's uvicorn protocol: a bounded request head, head and body deadlines (slow
clients are answered 408 and dropped), and ordinary requests untouched. A real uvicorn
process with `--http flightdelay.serving.protocol:LimitedHttpToolsProtocol`, raw sockets."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flightdelay.serving.protocol import IMPORT_PATH
from flightdelay.stack.pgcluster import free_port
from tests.conftest import ROOT, venv_env

# real server processes and the clock: in `make test`, not in `make test-fast`
pytestmark = pytest.mark.slow

HEAD_TIMEOUT, BODY_TIMEOUT, MAX_HEAD, MAX_BODY = 1.0, 1.5, 4096, 1_000_000


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = free_port()
    env = {
        "API_HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "API_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "API_MAX_HEADER_BYTES": str(MAX_HEAD),
        "API_MAX_BODY_BYTES": str(MAX_BODY),
    }
    cmd = ["uvicorn", "tests.helpers.asgi_echo:app", "--http", IMPORT_PATH, "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--log-level", "warning"], cwd=ROOT, env=venv_env(env), stderr=subprocess.PIPE
    )
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                httpx.get(f"http://127.0.0.1:{port}/events")
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def trickle(sock: socket.socket, data: bytes, seconds: float) -> float:
    """Send `data` a byte every 0.1 s until the server closes or `seconds` pass -> elapsed."""
    start = time.monotonic()
    for byte in data:
        if time.monotonic() - start > seconds:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # closed by the server
            break
        time.sleep(0.1)
    return time.monotonic() - start


def test_ordinary_requests_keep_alive_chunked_and_in_pieces(server: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{server}") as client:
        for _ in range(3):  # one kept-alive connection
            assert client.post("/x", content=b"a" * 100_000).text == "100000"
        chunks = iter([b"ab", b"cd", b"e"])
        assert client.post("/x", content=chunks).text == "5"  # chunked transfer encoding
    sock = connect(server)
    head = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nConnection: close\r\n\r\n"
    sock.sendall(head[:10])
    time.sleep(0.3)  # a request in pieces, well inside the deadlines
    sock.sendall(head[10:] + b"abc")
    time.sleep(0.3)
    sock.sendall(b"def")
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"6")


def test_oversized_head_gets_431_and_the_connection_closes(server: int) -> None:
    sock = connect(server)
    big = b"x-big: " + b"a" * (MAX_HEAD * 4) + b"\r\n"
    sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n" + big + b"\r\n")
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"API_MAX_HEADER_BYTES" in answer
    assert endless_header(server).startswith(b"HTTP/1.1 431")
    with httpx.Client() as client:  # the server still answers everybody else
        assert client.get(f"http://127.0.0.1:{server}/events").status_code == 200


def endless_header(port: int) -> bytes:
    """Stream 8 MiB of one header value that never ends -> what the server answered."""
    sock = connect(port)
    sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\nx-endless: ")
    try:
        for _ in range(128):
            sock.sendall(b"a" * 65536)
            time.sleep(0.001)
    except OSError:  # refused and closed before the end
        pass
    return read_all(sock)


def test_slow_head_gets_408_within_the_header_timeout(server: int) -> None:
    sock = connect(server)
    elapsed = trickle(sock, b"GET /x HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 200, 10)
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408") and b"API_HEADER_TIMEOUT_SECONDS" in answer
    assert HEAD_TIMEOUT - 0.2 <= elapsed <= HEAD_TIMEOUT + 3


def test_silent_connection_is_dropped(server: int) -> None:
    sock = connect(server)
    start = time.monotonic()
    answer = read_all(sock)  # nothing sent at all
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - start <= HEAD_TIMEOUT + 3


def test_slow_body_gets_408_and_the_app_sees_a_disconnect(server: int) -> None:
    sock = connect(server)
    sock.sendall(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
    elapsed = trickle(sock, b"b" * 1000, 10)  # 10 bytes/s: the body would need 100 s
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408") and b"API_BODY_TIMEOUT_SECONDS" in answer
    assert BODY_TIMEOUT - 0.2 <= elapsed <= BODY_TIMEOUT + 3
    events = httpx.get(f"http://127.0.0.1:{server}/events").text.split(",")
    assert "disconnect" in events


def test_expect_100_continue_past_the_body_limit_gets_413_not_continue(server: int) -> None:
    sock = connect(server)
    head = b"POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
    sock.sendall(head % 99_000_000_000)
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413") and b"100 Continue" not in answer
    sock = connect(server)  # within the limit: 100 Continue, then the answer
    sock.sendall(head.replace(b"Host: t", b"Host: t\r\nConnection: close") % 3)
    assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
    sock.sendall(b"abc")
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\n3")


def test_flightdelay_serve_runs_with_the_limits(tmp_path: Path) -> None:
    """`flightdelay serve` itself (no model needed: /health answers while it keeps trying)."""
    port = free_port()
    env = {
        "API_HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "API_MAX_HEADER_BYTES": str(MAX_HEAD),
        "MODEL_NAME": "nothing-registered",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    cmd = ["flightdelay", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=venv_env(env), stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < end
            time.sleep(0.2)
        assert endless_header(port).startswith(b"HTTP/1.1 431")
        sock = connect(port)
        trickle(sock, b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 200, 10)
        assert read_all(sock).startswith(b"HTTP/1.1 408")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
