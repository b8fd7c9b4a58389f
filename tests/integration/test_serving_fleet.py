"""Fleet-wide assignment: POST /model pins the registry's @serving, every replica follows it
within API_POLL_SECONDS (restarts included), POST /model/reload clears the pin."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flightdelay.core.registry import PIN_TAG, alias_version
from flightdelay.core.tracking import Tracking
from flightdelay.serving.app import create_app
from tests.helpers.serving import MODEL, TOKEN, register_tiny, settings_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def eventually(check: Callable[[], bool], timeout: float = 15) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "did not converge"
        time.sleep(0.05)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Any, TestClient, TestClient]]:
    settings = settings_for(tmp_path, model_alias="serving", api_poll_seconds=0.3)
    v1, _ = register_tiny(settings)
    register_tiny(settings, c=0.01, alias="challenger")
    client = Tracking(settings).client
    client.set_registered_model_alias(MODEL, "serving", str(v1))
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        for c in (a, b):
            eventually(lambda c=c: c.get("/ready").status_code == 200)
        yield (settings, client), a, b


def version_of(c: TestClient) -> int:
    return int(c.get("/model").json()["version"])


def test_assignment_reaches_every_replica_and_survives_restarts(
    fleet: tuple[Any, TestClient, TestClient],
) -> None:
    (settings, registry), a, b = fleet
    r = a.post("/model", json={"alias": "challenger", "reason": "canary"}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 2 and body["alias"] == "serving"  # this replica swapped at once
    assert body["pin"]["version"] == "2" and body["pin"]["reason"] == "canary"
    assert body["fleet"]["follow_seconds"] == 0.3 and body["fleet"]["expected_by"]
    assert alias_version(registry, MODEL, "serving") == "2"
    assert PIN_TAG in registry.get_registered_model(MODEL).tags
    eventually(lambda: version_of(b) == 2, timeout=0.3 + 5)
    assert b.get("/model").json()["pin"]["reason"] == "canary"  # any replica shows the pin
    with TestClient(create_app(settings)) as restarted:
        eventually(lambda: restarted.get("/ready").status_code == 200)
        assert version_of(restarted) == 2 and restarted.get("/model").json()["pin"]
    back = b.post("/model/reload", headers=AUTH)
    assert back.status_code == 200 and back.json()["version"] == 1 and back.json()["pin"] is None
    assert alias_version(registry, MODEL, "serving") == "1"
    eventually(lambda: version_of(a) == 1 and a.get("/model").json()["pin"] is None)


def test_a_failing_assignment_moves_nothing(fleet: tuple[Any, TestClient, TestClient]) -> None:
    (settings, registry), a, _ = fleet
    broken, _ = register_tiny(settings, alias=None, signature=False)
    r = a.post("/model", json={"version": broken}, headers=AUTH)
    assert r.status_code == 422 and r.json()["serving"]["version"] == 1
    assert a.post("/model", json={"version": 99}, headers=AUTH).status_code == 404
    assert alias_version(registry, MODEL, "serving") == "1"
    assert PIN_TAG not in (registry.get_registered_model(MODEL).tags or {})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"version": 10**20}, "version"),
        ({"version": True}, "version"),
        ({"version": "1"}, "version"),
        ({"version": 1.5}, "version"),
        ({"version": None}, "version"),
        ({"alias": "x" * 200}, "alias"),
        ({"alias": "bad alias"}, "alias"),
        ({"alias": 7}, "alias"),
        ({"version": 1, "extra": 1}, "extra"),
    ],
)
def test_impossible_assignments_are_422_naming_the_field(
    fleet: tuple[Any, TestClient, TestClient], body: dict[str, Any], field: str
) -> None:
    _, a, _ = fleet
    r = a.post("/model", json=body, headers=AUTH)
    assert r.status_code == 422 and f"field '{field}'" in r.json()["detail"], r.text
    assert "x" * 50 not in r.text  # no echo of the input


def test_a_huge_alias_is_413_before_it_is_parsed(fleet: tuple[Any, TestClient, TestClient]) -> None:
    _, a, _ = fleet
    r = a.post("/model", json={"alias": "x" * 1_000_000}, headers=AUTH)
    assert r.status_code == 413 and "x" * 50 not in r.text
