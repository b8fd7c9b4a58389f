"""What the fault tests share: bounded /predict load through nginx, the stack's own process
control (supervisorctl on the stack's supervisord.conf), and what each replica serves."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from flightdelay.core.config import StackSettings
from tests.conftest import ROOT
from tests.faults.conftest import FAULT_ENV
from tests.helpers.serving import records

REPLICAS = (28001, 28002)


@dataclass
class Load:
    """Bounded /predict load through nginx: `workers` clients one request at a time; each
    answer's status and the model version that gave it."""

    url: str
    workers: int = 4
    pause: float = 0.0  # seconds each client waits between requests (leaves CPU to the fault)
    stop: threading.Event = field(default_factory=threading.Event)
    results: list[tuple[float, float, int]] = field(default_factory=list)  # (t, seconds, status)
    versions: list[tuple[float, int]] = field(default_factory=list)  # (t, model version)

    def _run(self) -> None:
        body = records(1)[0]
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    r = client.post(self.url, json=body)
                    status = r.status_code
                    if status == 200:
                        self.versions.append((t0, int(r.json()["model"]["version"])))
                except httpx.HTTPError:
                    status = 0
                self.results.append((t0, time.monotonic() - t0, status))
                time.sleep(self.pause)

    def failed(self) -> list[tuple[float, float, int]]:
        return [r for r in self.results if r[2] != 200]


@contextmanager
def load(
    settings: StackSettings, warmup: float = 1, workers: int = 4, pause: float = 0.0
) -> Iterator[Load]:
    running = Load(f"http://127.0.0.1:{settings.nginx_http_port}/predict", workers, pause)
    threads = [threading.Thread(target=running._run) for _ in range(running.workers)]
    for t in threads:
        t.start()
    try:
        time.sleep(warmup)
        yield running
    finally:
        running.stop.set()
        for t in threads:
            t.join()


def wait_both_serve(settings: StackSettings, timeout: float = 30) -> None:
    """Until requests through nginx reach both replicas again (nginx counts a replica that
    failed as down for its fail_timeout, 3 s)."""
    url, body = f"http://127.0.0.1:{settings.nginx_http_port}/predict", records(1)[0]
    end, seen = time.monotonic() + timeout, set[str]()
    while time.monotonic() < end and seen != {"api1", "api2"}:
        r = httpx.post(url, json=body, timeout=5)
        if r.status_code != 200:
            seen.clear()  # both must serve, one after the other, with no failure between
        else:
            seen.add(r.headers.get("x-served-by", ""))
        time.sleep(0.05)
    assert seen == {"api1", "api2"}, seen


def until(condition: object, timeout: float, what: str) -> float:
    """Seconds until `condition()` is truthy (polled every 20 ms); AssertionError after timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError(f"{what} not within {timeout:.0f} s")


def supervisorctl(*args: str) -> str:
    """The stack's own process control (what `stack up`/`down` drive) on the fault stack."""
    conf = f"{FAULT_ENV['STACK_DIR']}/supervisord.conf"
    cmd = [str(ROOT / ".venv/bin/supervisorctl"), "-c", conf, *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout


def served_versions() -> dict[int, int]:
    """Replica port -> the model version it serves (GET /model on the replica itself)."""
    return {
        p: int(httpx.get(f"http://127.0.0.1:{p}/model", timeout=5).json()["version"])
        for p in REPLICAS
    }


def wait_served(version: int, timeout: float) -> float:
    """Seconds until every replica serves `version`; AssertionError after `timeout`."""
    t0 = time.monotonic()
    while (now := time.monotonic() - t0) < timeout:
        if set(served_versions().values()) == {version}:
            return now
        time.sleep(0.1)
    raise AssertionError(f"replicas serve {served_versions()}, not v{version}, after {timeout} s")


@dataclass(frozen=True)
class Registry:
    """The tiny model in the fault stack's registry: version -> tags, alias -> version."""

    versions: dict[int, dict[str, str]]
    aliases: dict[str, int]


def registry(settings: StackSettings) -> Registry:
    auth = (settings.mlflow_tracking_username, settings.mlflow_tracking_password.get_secret_value())
    base = f"http://127.0.0.1:{settings.nginx_mlflow_port}/api/2.0/mlflow"
    with httpx.Client(auth=auth, timeout=30) as client:
        model = client.get(f"{base}/registered-models/get", params={"name": "tiny"}).json()
        found = client.get(f"{base}/model-versions/search", params={"filter": "name='tiny'"}).json()
    versions = {
        int(v["version"]): {t["key"]: t["value"] for t in v.get("tags", [])}
        for v in found.get("model_versions", [])
    }
    aliases = {a["alias"]: int(a["version"]) for a in model["registered_model"].get("aliases", [])}
    return Registry(versions, aliases)


def kept(before: Registry, after: Registry) -> None:
    """No version lost; every alias still there."""
    assert set(before.versions) <= set(after.versions), (before.versions, after.versions)
    assert set(before.aliases) <= set(after.aliases), (before.aliases, after.aliases)
