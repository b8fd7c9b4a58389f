"""A dead or hung MLflow fails a stage with one line naming it, within a minute."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, venv_env


def _promote(uri: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    (cwd / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    start = time.monotonic()
    proc = subprocess.run(
        ["flightdelay", "promote", "1", "--reason", "outage test"],
        cwd=cwd,
        env=venv_env({"MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_PASSWORD": "s3cr3t-pw"}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, time.monotonic() - start


def _assert_one_line_naming_mlflow(proc: subprocess.CompletedProcess[str], uri: str) -> None:
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: MLflow at {uri} is not reachable")
    assert "s3cr3t-pw" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_dead_mlflow_server_is_one_line_within_seconds(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    proc, seconds = _promote(uri, tmp_path)
    _assert_one_line_naming_mlflow(proc, uri)
    assert seconds < 30


@pytest.fixture
def hung_server() -> Iterator[str]:
    """A port that accepts connections and never answers (a hung MLflow or proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.slow
def test_a_hung_mlflow_server_is_one_line_within_a_minute(hung_server: str, tmp_path: Path) -> None:
    proc, seconds = _promote(hung_server, tmp_path)
    _assert_one_line_naming_mlflow(proc, hung_server)
    assert seconds < 60
