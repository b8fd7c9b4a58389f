"""The service through TestClient, against tiny real models in a temporary MLflow store."""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from flightdelay.core.config import ServiceSettings
from flightdelay.serving.app import create_app
from flightdelay.serving.cli import MLFLOW_CLIENT_ENV
from tests.helpers.serving import (
    CATEGORICAL,
    NUMERIC,
    TOKEN,
    expected,
    records,
    register_tiny,
    settings_for,
    tiny_frame,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def wait_ready(client: TestClient, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"not ready: {client.get('/ready').json()}")


def first_failure(client: TestClient, timeout: float = 10) -> Any:
    """/ready once the first load attempt has failed (its reason replaces the initial one)."""
    ready = client.get("/ready")
    end = time.monotonic() + timeout
    while ready.json()["reason"] == "model not loaded yet" and time.monotonic() < end:
        time.sleep(0.05)
        ready = client.get("/ready")
    return ready


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    return settings_for(tmp_path)


@pytest.fixture
def served(settings: ServiceSettings) -> Iterator[tuple[TestClient, object]]:
    _, pipeline = register_tiny(settings)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client, pipeline


def test_predictions_equal_predict_proba(served: tuple[TestClient, object]) -> None:
    client, pipeline = served
    recs = records(40)
    single = client.post("/predict", json=recs[0])
    assert single.status_code == 200
    body = single.json()
    assert body["model"] == {"name": "tiny", "version": 1, "alias": "champion"}
    want = expected(pipeline, recs)
    assert abs(body["predictions"][0]["probability"] - want[0]) < 1e-9
    batch = client.post("/predict", json=recs).json()
    got = np.array([p["probability"] for p in batch["predictions"]])
    np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)
    assert [p["delayed"] for p in batch["predictions"]] == list(want >= 0.5)
    cols = client.post(
        "/predict", json={"columns": {k: [r[k] for r in recs] for k in recs[0]}}
    ).json()
    np.testing.assert_allclose(cols["probability"], want, atol=1e-9, rtol=0)
    assert client.get("/model").json()["scorer"] == "linear"


@pytest.mark.parametrize(
    ("mutate", "status", "needle"),
    [
        (lambda r: r | {"carrier": 7.5}, 422, "field 'carrier': Input should be a string or an"),
        (lambda r: r | {"distance": "far"}, 422, "field 'distance'"),
        (
            lambda r: {k: v for k, v in r.items() if k != "origin"},
            422,
            "field 'origin': Field required",
        ),
        (lambda r: r | {"tailnum": "N1"}, 422, "field 'tailnum': Extra inputs"),
    ],
)
def test_bad_record_names_the_field(
    served: tuple[TestClient, object], mutate, status, needle
) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    rec = records(1)[0] | {"carrier": "AA"}
    r = client.post("/predict", json=mutate(rec))
    assert r.status_code == status and needle in r.json()["detail"], r.json()
    r = client.post("/predict", json=[rec, mutate(rec)])
    assert r.status_code == status and r.json()["detail"].startswith("record 1: ")


def test_bad_bodies_are_4xx_never_500(served: tuple[TestClient, object]) -> None:
    client, _ = served
    assert client.post("/predict", content=b"{not json").status_code == 400
    assert client.post("/predict", content=b"").status_code in (400, 422)
    assert client.post("/predict", json=[]).status_code == 422
    assert client.post("/predict", json="a string").status_code == 422
    assert client.post("/predict", json=records(51)).status_code == 413  # API_MAX_BATCH=50
    cols = {k: [1.0] for k in NUMERIC} | {"carrier": ["AA", "UA"], "origin": ["EWR"]}
    assert client.post("/predict", json={"columns": cols}).status_code == 422


def test_body_over_the_size_limit_is_413_and_read_no_further(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, api_max_body_bytes=2_000)
    register_tiny(settings)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        small, big = records(3), records(40)
        assert client.post("/predict", json=small).status_code == 200
        r = client.post("/predict", json=big)
        assert r.status_code == 413 and "API_MAX_BODY_BYTES" in r.json()["detail"], r.text
        assert client.post("/predict", json=small).status_code == 200  # still serving


def test_unknown_category_is_a_warning_not_an_error(served: tuple[TestClient, object]) -> None:
    client, pipeline = served
    rec = records(1)[0] | {"carrier": "ZZ"}
    r = client.post("/predict", json=rec)
    assert r.status_code == 200
    assert any("ZZ" in w for w in r.json()["warnings"])
    assert abs(r.json()["predictions"][0]["probability"] - expected(pipeline, [rec])[0]) < 1e-9


def test_start_without_model_then_ready_without_restart(settings: ServiceSettings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        ready = first_failure(client)
        assert ready.status_code == 503 and "not found" in ready.json()["reason"]
        r = client.post("/predict", json=records(1)[0])
        assert r.status_code == 503 and r.json()["detail"] == "no model loaded yet"
        register_tiny(settings)
        wait_ready(client)
        assert client.post("/predict", json=records(1)[0]).status_code == 200


def test_unreachable_registry_still_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow's client knobs come from the service's environment, as `flightdelay serve` and the
    # stack start it (fail fast: the holder retries with its own backoff)
    for key, value in MLFLOW_CLIENT_ENV.items():
        monkeypatch.setenv(key, value)
    settings = settings_for(tmp_path, mlflow_tracking_uri="http://127.0.0.1:9")
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        r = first_failure(client)
        assert r.status_code == 503 and "unreachable" in r.json()["reason"]


def test_assign_requires_token_and_swaps(
    served: tuple[TestClient, object], settings: ServiceSettings
) -> None:
    client, _ = served
    v2, pipeline2 = register_tiny(settings, c=0.01, alias="challenger")
    assert client.post("/model", json={"alias": "challenger"}).status_code == 401
    assert (
        client.post(
            "/model", json={"alias": "challenger"}, headers={"Authorization": "Bearer nope"}
        ).status_code
        == 403
    )
    r = client.post("/model", json={"alias": "challenger"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["version"] == v2
    info = client.get("/model").json()
    assert info["version"] == v2 and info["alias"] == "challenger"
    assert info["git_sha"] == "abc123" and info["data_hashes"] == {"data.train_md5": "d41d8"}
    assert info["metrics"] == {"roc_auc": 0.7} and info["params"]["C"] == "0.01"
    rec = records(1)[0]
    got = client.post("/predict", json=rec).json()
    assert got["model"]["version"] == v2
    assert abs(got["predictions"][0]["probability"] - expected(pipeline2, [rec])[0]) < 1e-9
    pinned = client.post("/model", json={"version": 1}, headers=AUTH).json()
    assert pinned["version"] == 1 and pinned["alias"] is None
    back = client.post("/model/reload", headers=AUTH).json()
    assert back["version"] == 1 and back["alias"] == "champion"
    assert client.post("/model", json={"alias": "x", "version": 1}, headers=AUTH).status_code == 422


def test_swap_to_missing_or_broken_keeps_old(
    served: tuple[TestClient, object], settings: ServiceSettings
) -> None:
    client, _ = served
    r = client.post("/model", json={"version": 42}, headers=AUTH)
    assert r.status_code == 404 and r.json()["serving"]["version"] == 1
    broken, _ = register_tiny(settings, alias=None, signature=False)
    r = client.post("/model", json={"version": broken}, headers=AUTH)
    assert r.status_code == 422 and "no signature" in r.json()["detail"]
    assert client.get("/model").json()["version"] == 1
    assert client.post("/predict", json=records(1)[0]).json()["model"]["version"] == 1


def test_uncompilable_pipeline_falls_back_to_sklearn(settings: ServiceSettings) -> None:
    x, y = tiny_frame()
    odd = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        (
                            "cat",
                            OneHotEncoder(handle_unknown="ignore", drop="if_binary"),
                            CATEGORICAL,
                        ),
                        (
                            "num",
                            Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]),
                            NUMERIC,
                        ),
                    ]
                ),
            ),
            ("classifier", LogisticRegression()),
        ]
    ).fit(x, y)
    register_tiny(settings, pipeline=odd)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        info = client.get("/model").json()
        assert info["scorer"] == "sklearn" and "OneHotEncoder" in info["scorer_fallback_reason"]
        recs = records(10)
        got = [p["probability"] for p in client.post("/predict", json=recs).json()["predictions"]]
        np.testing.assert_allclose(got, expected(odd, recs), atol=1e-12)


def test_metrics_expose_counters(served: tuple[TestClient, object]) -> None:
    client, _ = served
    client.post("/predict", json=records(3))
    client.post("/predict", json={"bad": 1})
    text = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/predict",status="200"}' in text
    assert 'http_requests_total{method="POST",route="/predict",status="422"}' in text
    assert 'predictions_total{model_version="1"} 3.0' in text
    assert 'model_loads_total{result="ok"} 1.0' in text
    assert "http_request_duration_seconds_bucket" in text and "model_version 1.0" in text
    # every request lands in the latency histogram once (wait_ready's /ready calls included)
    count = re.search(
        r'http_request_duration_seconds_count\{method="POST",route="/predict"\} (\S+)', text
    )
    assert count is not None and float(count.group(1)) == 2.0
    assert (
        'http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/predict"} 2.0' in text
    )


def test_first_load_freezes_and_leaves_the_garbage_collector_on(settings: ServiceSettings) -> None:
    """The first load runs with the cyclic GC paused (start-up speed), then freezes what it
    built; the collector must come back on."""
    register_tiny(settings)
    gc.unfreeze()  # nothing frozen: only this app's first load can freeze
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        assert gc.isenabled() and gc.get_freeze_count() > 0


def test_openapi_shows_the_model_fields(served: tuple[TestClient, object]) -> None:
    client, _ = served
    schema = client.get("/openapi.json").json()
    props = schema["components"]["schemas"]["TinyRecord"]["properties"]
    assert set(props) == set(CATEGORICAL + NUMERIC)
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert "one record" in body["examples"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_work_offline(settings: ServiceSettings, page: str) -> None:
    """The docs pages load their scripts and styles from the service itself, not a CDN."""
    with TestClient(create_app(settings)) as client:
        html = client.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html.text, re.I), html.text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
        assert any(a.endswith(".js") for a in assets), assets
        for asset in assets:
            assert asset.startswith("/"), asset
            r = client.get(asset)
            assert r.status_code == 200 and len(r.content) > 1000, asset
        assert client.get("/openapi.json").status_code == 200
