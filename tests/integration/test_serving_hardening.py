"""Issue 11's service faults: non-finite and loosely typed numbers, columnar mistakes,
duplicate keys, disconnects, credentials in errors, and the documented error answers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flightdelay.serving.app import create_app
from flightdelay.serving.cli import MLFLOW_CLIENT_ENV
from tests.helpers.serving import records, register_tiny, settings_for


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = settings_for(tmp_path)
    register_tiny(settings)
    with TestClient(create_app(settings)) as c:
        end = time.monotonic() + 30
        while c.get("/ready").status_code != 200:
            assert time.monotonic() < end
            time.sleep(0.05)
        yield c


def raw(c: TestClient, body: bytes) -> Any:
    return c.post("/predict", content=body, headers={"Content-Type": "application/json"})


REC = b'{"carrier": "AA", "origin": "EWR", "distance": %s, "temp": 50.0}'


@pytest.mark.parametrize(
    "value", [b"1e400", b"-1e400", b'"inf"', b"1" + b"0" * 400, b"NaN", b"Infinity", b"true"]
)
def test_non_finite_or_non_numbers_are_422_naming_the_field(
    client: TestClient, value: bytes
) -> None:
    r = raw(client, REC % value)
    assert r.status_code == 422 and "field 'distance'" in r.json()["detail"], r.text
    r = raw(client, b"[" + REC % b"1.0" + b"," + REC % value + b"]")
    assert r.status_code == 422 and r.json()["detail"].startswith("record 1: field 'distance'")
    cols = b'{"columns": {"carrier": ["AA"], "origin": ["EWR"], "distance": [%s], "temp": [1]}}'
    r = raw(client, cols % value)
    assert r.status_code == 422 and "field 'distance'" in r.json()["detail"], r.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("carrier", True),
        ("carrier", 7.5),
        ("distance", True),
        ("distance", " 12 "),
        ("distance", "1_000"),
        ("distance", "12"),
    ],
)
def test_no_loose_types(client: TestClient, field: str, value: object) -> None:
    r = client.post("/predict", json=records(1)[0] | {field: value})
    assert r.status_code == 422 and f"field '{field}'" in r.json()["detail"], r.text


def test_columns_of_different_lengths_name_the_columns_and_lengths(client: TestClient) -> None:
    cols = {"carrier": ["AA", "UA"], "origin": ["EWR"], "distance": [1.0, 2.0], "temp": [1, 2]}
    r = client.post("/predict", json={"columns": cols})
    assert r.status_code == 422, r.text
    assert "'origin' has 1" in r.json()["detail"] and "'carrier' has 2" in r.json()["detail"]


def test_one_overlong_column_is_413_naming_it(client: TestClient) -> None:
    cols = {"carrier": ["AA"], "origin": ["EWR"] * 51, "distance": [1.0], "temp": [1.0]}
    r = client.post("/predict", json={"columns": cols})
    assert r.status_code == 413 and "column 'origin'" in r.json()["detail"], r.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"carrier": "AA", "origin": "EWR", "distance": 1, "temp": 2, "temp": 3}',
        b'[{"carrier": "AA", "origin": "EWR", "distance": 1, "distance": 2, "temp": 3}]',
        b'{"columns": {"carrier": ["AA"], "origin": ["EWR"], "distance": [1], "temp": [2],'
        b' "temp": [3]}}',
        b'{"carrier": "A:A", "origin": "EWR", "distance": 1, "temp": 2, "temp": 3}',
    ],
)
def test_duplicate_keys_are_422(client: TestClient, body: bytes) -> None:
    r = raw(client, body)
    assert r.status_code == 422 and "given twice" in r.json()["detail"], r.text


def test_colons_inside_strings_are_not_duplicates(client: TestClient) -> None:
    r = raw(client, b'{"carrier": "A:A", "origin": "E:W:R", "distance": 1, "temp": 2}')
    assert r.status_code == 200 and any("A:A" in w for w in r.json()["warnings"]), r.text


def test_a_client_leaving_mid_body_is_no_500_and_no_error_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    app = client.app
    messages = [
        {"type": "http.request", "body": b'[{"carrier": "AA", ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Any] = []

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    for path in ("/predict", "/model"):
        messages[:] = messages or [
            {"type": "http.request", "body": b'{"ver', "more_body": True},
            {"type": "http.disconnect"},
        ]
        headers = [(b"authorization", b"Bearer test-token")] if path == "/model" else []
        scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode()}
        scope |= {"query_string": b"", "headers": headers, "root_path": "", "scheme": "http"}
        with caplog.at_level(logging.WARNING):
            asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499, 499]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    metrics = client.get("/metrics").text
    assert 'status="500"' not in metrics and 'status="499"' in metrics


def test_credentials_never_in_answers_or_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for key, value in MLFLOW_CLIENT_ENV.items():
        monkeypatch.setenv(key, value)
    uri = "http://alice:s3cr3t-pw@127.0.0.1:9"
    settings = settings_for(tmp_path, mlflow_tracking_uri=uri)
    with caplog.at_level(logging.DEBUG), TestClient(create_app(settings)) as c:
        end = time.monotonic() + 30
        while c.get("/ready").json()["reason"] == "model not loaded yet":
            assert time.monotonic() < end
            time.sleep(0.05)
        answers = [
            c.get("/ready"),
            c.get("/model"),
            c.post("/predict", json=records(1)[0]),
            c.post("/model", json={"version": 1}, headers={"Authorization": "Bearer test-token"}),
        ]
        for r in answers:
            assert r.status_code in (503, 404) and "s3cr3t" not in r.text, r.text
        assert "alice:***@" in answers[0].text
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "s3cr3t" not in logged


def test_openapi_documents_answers_errors_and_the_bearer_scheme(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("scheme", "").lower() == "bearer" for s in schemes.values()), schemes
    for path in ("/model", "/model/reload"):
        post = schema["paths"][path]["post"]
        assert post["security"], post
        assert {"200", "401", "403", "404", "413", "422", "503"} <= set(post["responses"])
    predict = schema["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "413", "422", "503"} <= set(predict)
    problem = {"$ref": "#/components/schemas/Problem"}
    assert predict["422"]["content"]["application/json"]["schema"] == problem
    assert len(predict["200"]["content"]["application/json"]["schema"]["oneOf"]) == 2


def test_one_error_shape_everywhere(client: TestClient) -> None:
    auth = {"Authorization": "Bearer test-token"}
    answers = [
        client.get("/nope"),
        client.post("/model", content=b"{", headers=auth | {"Content-Type": "application/json"}),
        client.post("/model", json={"version": "x"}, headers=auth),
        client.post("/predict", json={"x": 1}),
        client.post("/model"),
    ]
    for r in answers:
        assert r.status_code >= 400 and isinstance(r.json()["detail"], str), r.text
