"""Issue 13 item 5: process metrics, request counts that add up across API_WORKERS=2, request
ids echoed on every answer, and JSON log lines."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.serving import records, register_tiny, service_env, settings_for

# real server processes and the clock: in `make test`, not in `make test-fast`
pytestmark = pytest.mark.slow

SENT = 120
PREDICT_200 = re.compile(
    r'^http_requests_total\{method="POST",route="/predict",status="200"\} (\S+)$', re.M
)


def start_workers(
    tmp_path: Path, env: dict[str, str], workers: int
) -> tuple[str, subprocess.Popen[bytes]]:
    from flightdelay.stack.pgcluster import free_port
    from tests.conftest import venv_env

    port = free_port()
    cmd = ["uvicorn", "flightdelay.serving.app:create_app", "--factory", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--workers", str(workers), "--no-access-log", "--log-level", "info"],
        cwd=tmp_path,
        env=venv_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return f"http://127.0.0.1:{port}", proc


def ready_workers(url: str, workers: int, timeout: float = 90) -> None:
    """Until `workers` distinct processes answered /ready 200 (each on a new connection)."""
    seen: set[str] = set()
    end = time.monotonic() + timeout
    while len(seen) < workers:
        assert time.monotonic() < end, f"only {len(seen)} of {workers} workers ready"
        try:
            r = httpx.get(f"{url}/ready")
            if r.status_code == 200:
                seen.add(r.headers["x-served-by"])
        except httpx.HTTPError:
            pass
        time.sleep(0.05)


def test_two_workers_counters_add_up_and_process_metrics_ids_and_json_logs(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    register_tiny(settings)
    metrics_dir = tmp_path / "metrics"
    env = service_env(settings, API_METRICS_DIR=str(metrics_dir))
    url, proc = start_workers(tmp_path, env, 2)
    try:
        ready_workers(url, 2)
        body = records(1)[0]
        served_by, ids = set(), set()
        for i in range(SENT):  # a new connection each: both workers answer
            headers = {"x-request-id": f"test-{i}"} if i % 2 else {}
            r = httpx.post(f"{url}/predict", json=body, headers=headers)
            assert r.status_code == 200, r.text
            served_by.add(r.headers["x-served-by"])
            ids.add(r.headers["x-request-id"])
            if i % 2:
                assert r.headers["x-request-id"] == f"test-{i}"
        assert len(served_by) == 2 and len(ids) == SENT
        time.sleep(2.5)  # every worker has written its counters (each second)
        for _ in range(6):
            text = httpx.get(f"{url}/metrics").text
            counted = PREDICT_200.search(text)
            assert counted and float(counted.group(1)) == SENT, text[:3000]
            for family in ("process_resident_memory_bytes", "process_open_fds", "python_gc_"):
                assert family in text, family
        assert httpx.get(f"{url}/health").headers["x-request-id"]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    ours = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert ours, out
    for line in ours:
        entry = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= entry.keys(), line
    assert any(json.loads(ln)["logger"] == "uvicorn.error" for ln in ours), out  # uvicorn's too
