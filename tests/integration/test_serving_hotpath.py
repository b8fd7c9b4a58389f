"""Issue 12's hot path: POST /predict answered by the compiled validator and scorer, with the
answers of the reference way (pydantic + the scorer's general path) and the pipeline's
predict_proba, and the request's metrics and headers although it bypasses the middleware."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from flightdelay.core.model_code import coerce_frame
from flightdelay.serving import hotpath, slices
from flightdelay.serving.app import create_app
from flightdelay.serving.metrics import ServiceMetrics
from flightdelay.serving.routes.predict import score_body
from tests.helpers.serving import VARIANTS, records, register_tiny, settings_for


@pytest.fixture(params=sorted(VARIANTS))
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any, str]]:
    kind = str(request.param)
    settings = settings_for(tmp_path)
    _, pipeline = register_tiny(settings, kind=kind)
    with TestClient(create_app(settings)) as client:
        end = time.monotonic() + 30
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < end
            time.sleep(0.05)
        yield client, pipeline, kind


def bodies(kind: str) -> dict[str, bytes]:
    """One record, short and long lists, short and long columns; with unknown categories and
    nulls where the variant has categoricals and numerics."""
    recs = records(40, kind=kind)
    cat, num = VARIANTS[kind]
    for i, rec in enumerate(recs[:6]):
        if cat:
            rec[cat[0]] = ["ZZ", "QQ", None, 7][i % 4]
        if num:
            rec[num[0]] = [None, 3, -1e300, 12.5][i % 4]
    columns = {k: [r[k] for r in recs] for k in recs[0]}
    return {
        "one": json.dumps(recs[0]).encode(),
        "one null": json.dumps(recs[2]).encode(),
        "colon in a string": json.dumps(recs[0] | ({cat[0]: "A:A"} if cat else {})).encode(),
        "list 3": json.dumps(recs[:3]).encode(),
        "list 40": json.dumps(recs).encode(),
        "columns 3": json.dumps({"columns": {k: v[:3] for k, v in columns.items()}}).encode(),
        "columns 40": json.dumps({"columns": columns}).encode(),
    }


def probabilities(answer: dict[str, Any]) -> list[float]:
    if "probability" in answer:
        return list(answer["probability"])
    return [p["probability"] for p in answer["predictions"]]


def test_compiled_answers_equal_the_reference_and_predict_proba(served: Any) -> None:
    client, pipeline, kind = served
    model = client.app.state.holder.current
    metrics = ServiceMetrics()
    cat, num = VARIANTS[kind]
    for name, body in bodies(kind).items():
        fast = hotpath.fast_answer(model, body, metrics)
        if name == "colon in a string" and cat:
            assert fast is None, "a colon inside a string goes the reference way"
            continue
        assert fast is not None, f"{name}: the compiled path refused a valid body"
        got, want = json.loads(fast), json.loads(score_body(model, body, metrics).body)
        assert got.keys() == want.keys() and got["warnings"] == want["warnings"], name
        assert np.allclose(probabilities(got), probabilities(want), rtol=0, atol=1e-12), name
        labels = got.get("delayed") or [p["delayed"] for p in got["predictions"]]
        assert labels == [p >= 0.5 for p in probabilities(got)], name
        parsed = json.loads(body)
        rows = parsed if isinstance(parsed, list) else parsed.get("columns", [parsed])
        frame = pd.DataFrame(rows)
        expected = pipeline.predict_proba(coerce_frame(frame, cat, num))[:, 1]
        assert np.allclose(probabilities(got), expected, rtol=0, atol=1e-9), name


WITH_CATEGORIES = [kind for kind in sorted(VARIANTS) if VARIANTS[kind][0]]


@pytest.mark.parametrize("served", WITH_CATEGORIES, indirect=True)  # a category to be unknown
def test_unknown_categories_warn_on_the_compiled_path(served: Any) -> None:
    client, _, kind = served
    r = client.post("/predict", content=bodies(kind)["columns 40"])
    assert r.status_code == 200, r.text
    column = VARIANTS[kind][0][0]
    assert any(w.startswith(f"unknown {column} value(s)") for w in r.json()["warnings"]), r.text


def test_the_hot_path_counts_itself_and_names_the_instance(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, api_instance="replica-7")
    register_tiny(settings)
    with TestClient(create_app(settings)) as client:
        before = client.post("/predict", json=records(1)[0])  # 503 or 200: counted either way
        end = time.monotonic() + 30
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < end
            time.sleep(0.05)
        ok = client.post("/predict", json=records(20))
        bad = client.post("/predict", json={"carrier": "AA"})
        metrics = client.get("/metrics").text
    assert ok.status_code == 200 and bad.status_code == 422, (ok.text, bad.text)
    for r in (before, ok, bad):
        assert r.headers["x-served-by"] == "replica-7"
        assert r.headers["content-type"] == "application/json"
    line = 'http_requests_total{method="POST",route="/predict",status="200"}'
    assert f"{line} {1.0 + (before.status_code == 200)}" in metrics, metrics
    assert 'route="/predict",status="422"} 1.0' in metrics
    assert 'predictions_total{model_version="1"} ' in metrics


def test_large_bodies_sliced_give_the_same_answers_and_errors(
    served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, kind = served
    body = bodies(kind)
    whole = {n: client.post("/predict", content=b).json() for n, b in body.items()}
    monkeypatch.setattr(hotpath, "SLICE_BYTES", 0)  # every body is "large"
    monkeypatch.setattr(slices, "RECORDS_PER_SLICE", 7)
    for name, b in body.items():
        r = client.post("/predict", content=b)
        assert r.status_code == 200 and r.json() == whole[name], name
    recs = json.loads(body["list 40"])
    column = next(iter(recs[0]))
    bad = [*recs[:25], recs[25] | {column: True}, *recs[26:]]
    r = client.post("/predict", json=bad)
    assert r.status_code == 422 and r.json()["detail"].startswith(f"record 25: field '{column}'")
    twice = json.dumps(recs).encode()[:-2] + b', "%s": null}]' % column.encode()
    r = client.post("/predict", content=twice)
    assert r.status_code == 422 and "given twice" in r.json()["detail"], r.text
    cols = json.loads(body["columns 40"])["columns"]
    r = client.post("/predict", json={"columns": cols | {column: cols[column][:-1]}})
    assert r.status_code == 422 and f"'{column}' has 39" in r.json()["detail"], r.text
