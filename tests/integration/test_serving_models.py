"""All-numeric, all-categorical, integer-coded categorical and renamed models are served, and
the answers and schemas speak the model's words (its name and target)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from flightdelay.core.model_code import coerce_frame
from flightdelay.serving.app import create_app
from tests.helpers.serving import (
    VARIANTS,
    expected,
    records,
    register_tiny,
    settings_for,
    variant_frame,
)


def ready_client(settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        end = time.monotonic() + 30
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < end, client.get("/ready").json()
            time.sleep(0.05)
        yield client


def assert_serves(client: TestClient, pipeline: Any, kind: str, label: str = "delayed") -> None:
    recs = records(30, kind=kind)
    want = expected(pipeline, recs, kind)
    one = client.post("/predict", json=recs[0])
    assert one.status_code == 200, one.text
    assert abs(one.json()["predictions"][0]["probability"] - want[0]) < 1e-9
    assert one.json()["predictions"][0][label] == bool(want[0] >= 0.5)
    many = client.post("/predict", json=recs).json()
    np.testing.assert_allclose([p["probability"] for p in many["predictions"]], want, atol=1e-9)
    cols = {k: [r[k] for r in recs] for k in recs[0]}
    got = client.post("/predict", json={"columns": cols}).json()
    np.testing.assert_allclose(got["probability"], want, atol=1e-9)
    assert got[label] == list(want >= 0.5)


@pytest.mark.parametrize("kind", ["numeric", "categorical", "intcat"])
def test_every_feature_mix_compiles_and_serves(tmp_path: Path, kind: str) -> None:
    settings = settings_for(tmp_path)
    _, pipeline = register_tiny(settings, kind=kind)
    for client in ready_client(settings):
        assert client.get("/model").json()["scorer"] == "linear"
        assert_serves(client, pipeline, kind)


def test_integer_categoricals_mean_their_digits_and_floats_bools_are_422(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    _, pipeline = register_tiny(settings, kind="intcat")
    for client in ready_client(settings):
        rec = records(1, kind="intcat")[0] | {"gate": 3}
        as_int = client.post("/predict", json=rec).json()
        as_str = client.post("/predict", json=rec | {"gate": "3"}).json()
        assert as_int["predictions"] == as_str["predictions"] and as_int["warnings"] == []
        assert (
            abs(as_int["predictions"][0]["probability"] - expected(pipeline, [rec], "intcat")[0])
            < 1e-9
        )
        for bad in (3.0, 3.5, True, [3], {"a": 3}):
            r = client.post("/predict", json=rec | {"gate": bad})
            assert r.status_code == 422 and "field 'gate'" in r.json()["detail"], r.text
            r = client.post(
                "/predict", json={"columns": {k: [v] for k, v in (rec | {"gate": bad}).items()}}
            )
            assert r.status_code == 422 and "field 'gate'" in r.json()["detail"], r.text
        unseen = client.post("/predict", json=rec | {"gate": 9}).json()
        assert any("gate" in w and "9" in w for w in unseen["warnings"])


def test_an_uncompilable_categorical_only_model_falls_back_with_int_codes(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    cat, num = VARIANTS["intcat"][0], []
    x, y = variant_frame("intcat")
    encoder = OneHotEncoder(handle_unknown="ignore", drop="if_binary")
    odd = Pipeline(
        [
            ("preprocess", ColumnTransformer([("cat", encoder, cat)])),
            ("classifier", LogisticRegression()),
        ]
    ).fit(coerce_frame(x, cat, num), y)
    register_tiny(settings, pipeline=odd, kind="intcat")
    # the signature has the numerics too: the helper logs the variant's whole frame
    for client in ready_client(settings):
        info = client.get("/model").json()
        assert info["scorer"] == "sklearn", info
        assert_serves(client, odd, "intcat")


def test_answers_and_schemas_are_named_after_the_model(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    config = {"target": "default", "positive": "Yes", "model_name": "credit-risk"}
    _, pipeline = register_tiny(settings, **config)
    for client in ready_client(settings):
        assert_serves(client, pipeline, "mixed", label="default")
        one = client.post("/predict", json=records(1)[0]).json()
        assert set(one["predictions"][0]) == {"probability", "default"}
        schema = client.get("/openapi.json").json()
        names = set(schema["components"]["schemas"])
        assert {"CreditRiskRecord", "CreditRiskColumns", "CreditRiskPrediction"} <= names
        assert not [n for n in names if "Flight" in n], names
        props = schema["components"]["schemas"]["CreditRiskPrediction"]["properties"]
        assert set(props) == {"probability", "default"}
        assert "default is Yes" in props["probability"]["description"]
        answers = schema["paths"]["/predict"]["post"]["responses"]["200"]["content"]
        refs = {r["$ref"].rsplit("/", 1)[1] for r in answers["application/json"]["schema"]["oneOf"]}
        assert refs == {"CreditRiskAnswer", "CreditRiskColumnsAnswer"}
