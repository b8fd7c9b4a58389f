"""The registered model is the served model: the pyfunc (in-process and behind
`mlflow models serve`) and the service answer the same probability on every test row."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from flightdelay.core.config import PipelineSettings, ServiceSettings, load_params
from flightdelay.core.tracking import Tracking
from tests.conftest import venv_env
from tests.helpers.http import free_port, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(reproduced_repo: Path) -> PipelineSettings:
    return PipelineSettings(
        mlflow_tracking_uri=f"sqlite:///{reproduced_repo / 'mlflow.db'}",
        mlflow_artifact_root=str(reproduced_repo / "mlruns"),
    )


@pytest.fixture(scope="module")
def test_rows(reproduced_repo: Path) -> pd.DataFrame:
    return pd.read_parquet(reproduced_repo / "data/processed/test.parquet")


@pytest.fixture(scope="module")
def model_dir(store: PipelineSettings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tracking = Tracking(store)
    version = tracking.client.get_model_version_by_alias("flightdelay", "champion").version
    return tracking.download_version("flightdelay", str(version), tmp_path_factory.mktemp("m"))


@pytest.fixture(scope="module")
def pyfunc_proba(model_dir: Path, test_rows: pd.DataFrame) -> np.ndarray:
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(model_dir))
    raw = test_rows.drop(columns=[load_params().train.target])
    proba = np.asarray(model.predict(raw), dtype=float)
    assert proba.shape == (len(test_rows),)
    return proba


def _json_columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    return {
        c: [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in frame[c]]
        for c in frame.columns
    }


def test_service_equals_pyfunc_on_every_test_row(
    store: PipelineSettings, test_rows: pd.DataFrame, pyfunc_proba: np.ndarray
) -> None:
    from flightdelay.serving.app import create_app

    tp = load_params().train
    settings = ServiceSettings(
        mlflow_tracking_uri=store.mlflow_tracking_uri,
        model_name="flightdelay",
        model_alias="serving",
        api_poll_seconds=0,
    )
    features = test_rows[[*tp.categorical, *tp.numeric]]
    got: list[float] = []
    with TestClient(create_app(settings)) as client:
        end = time.monotonic() + 60
        while client.get("/ready").status_code != 200 and time.monotonic() < end:
            time.sleep(0.2)
        assert client.get("/model").json()["scorer"] == "linear"
        for start in range(0, len(features), settings.api_max_batch):
            chunk = features.iloc[start : start + settings.api_max_batch]
            answer = client.post("/predict", json={"columns": _json_columns(chunk)})
            assert answer.status_code == 200, answer.text[:300]
            got += answer.json()["probability"]
    np.testing.assert_allclose(np.array(got), pyfunc_proba, rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def mlflow_serve(model_dir: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            *("mlflow", "models", "serve", "-m", str(model_dir), "--env-manager", "local"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        env=venv_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(f"{url}/ping", proc, timeout=120)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_mlflow_models_serve_equals_pyfunc(
    mlflow_serve: str, test_rows: pd.DataFrame, pyfunc_proba: np.ndarray
) -> None:
    tp = load_params().train
    rows = test_rows[[*tp.categorical, *tp.numeric]].head(2000)
    split = rows.to_dict(orient="split")
    body = {
        "dataframe_split": {
            "columns": split["columns"],
            "data": [
                [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in r]
                for r in split["data"]
            ],
        }
    }
    answer = httpx.post(f"{mlflow_serve}/invocations", json=body, timeout=60)
    assert answer.status_code == 200, answer.text[:500]
    got = np.asarray(answer.json()["predictions"], dtype=float).reshape(-1)
    np.testing.assert_allclose(got, pyfunc_proba[: len(rows)], rtol=0, atol=1e-9)
