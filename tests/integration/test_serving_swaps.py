"""A real uvicorn process: concurrent /predict traffic during repeated swaps never fails."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flightdelay.stack.pgcluster import free_port
from tests.conftest import venv_env
from tests.helpers.serving import TOKEN, records, register_tiny, settings_for

# real server processes and the clock: in `make test`, not in `make test-fast`
pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, list[int]]]:
    settings = settings_for(tmp_path)
    v1, _ = register_tiny(settings, c=1.0)
    v2, _ = register_tiny(settings, c=0.01, alias="challenger")
    port = free_port()
    env = venv_env(
        {
            "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "MODEL_NAME": "tiny",
            "MODEL_ALIAS": "champion",
            "API_TOKEN": TOKEN,
            "API_POLL_SECONDS": "0",
            "API_RETRY_MIN_SECONDS": "0.2",
        }
    )
    proc = subprocess.Popen(
        [
            "uvicorn",
            "flightdelay.serving.app:create_app",
            "--factory",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.1)
        yield url, [v1, v2]
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_no_failed_request_during_swaps(server: tuple[str, list[int]]) -> None:
    url, versions = server
    recs = records(5)
    stop = threading.Event()
    results: list[tuple[int, int | None]] = []
    lock = threading.Lock()

    def hammer() -> None:
        with httpx.Client(base_url=url, timeout=10) as c:
            while not stop.is_set():
                r = c.post("/predict", json=recs)
                version = r.json()["model"]["version"] if r.status_code == 200 else None
                with lock:
                    results.append((r.status_code, version))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    swapped = []
    with httpx.Client(
        base_url=url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as admin:
        for i in range(12):
            target = versions[i % 2]
            r = admin.post("/model", json={"version": target})
            assert r.status_code == 200, r.text
            swapped.append(r.json()["version"])
            time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    assert len(swapped) >= 10 and set(swapped) == set(versions)
    assert len(results) > 100
    assert all(status == 200 for status, _ in results), {s for s, _ in results}
    assert {v for _, v in results} <= set(versions)


def test_predict_cli_single_and_file(server: tuple[str, list[int]], tmp_path: Path) -> None:
    url, _ = server
    rec = records(1)[0]
    env = venv_env()
    one = subprocess.run(
        ["flightdelay", "predict", "--host", url, "--record", json.dumps(rec)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert one.returncode == 0, one.stderr
    assert len(json.loads(one.stdout)["predictions"]) == 1
    path = tmp_path / "records.json"
    path.write_text(json.dumps(records(7)))
    many = subprocess.run(
        ["flightdelay", "predict", "--host", url, "--file", str(path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert many.returncode == 0 and len(json.loads(many.stdout)["predictions"]) == 7
    bad = subprocess.run(
        ["flightdelay", "predict", "--host", url, "--record", json.dumps(rec | {"x": 1})],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "field 'x'" in bad.stdout


def test_chunked_body_scores_like_a_plain_one(server: tuple[str, list[int]]) -> None:
    """A body that arrives in several pieces (chunked transfer) is read whole."""
    url, _ = server
    recs = records(30)
    raw = json.dumps(recs).encode()

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(raw), 97):
            yield raw[i : i + 97]

    headers = {"Content-Type": "application/json"}
    plain = httpx.post(f"{url}/predict", content=raw, headers=headers)
    chunked = httpx.post(f"{url}/predict", content=pieces(), headers=headers)
    assert plain.status_code == chunked.status_code == 200, chunked.text
    assert chunked.json()["predictions"] == plain.json()["predictions"]
    assert len(chunked.json()["predictions"]) == 30
