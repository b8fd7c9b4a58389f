"""Tiny real models, fitted in tmp_path and registered in a temporary MLflow SQLite store."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from flightdelay.core.config import ServiceSettings, VariantParams
from flightdelay.core.estimator import build_pipeline
from flightdelay.core.model_code import TRUSTED_TYPES as TRUSTED
from flightdelay.core.model_code import category_string, coerce_frame
from flightdelay.core.tracking import LoggedModel, Tracking

CATEGORICAL = ["carrier", "origin"]
NUMERIC = ["distance", "temp"]
MODEL = "tiny"
TOKEN = "test-token"


# feature lists of the tiny model variants; "gate" is an integer-coded categorical
VARIANTS: dict[str, tuple[list[str], list[str]]] = {
    "mixed": (CATEGORICAL, NUMERIC),
    "numeric": ([], NUMERIC),
    "categorical": (CATEGORICAL, []),
    "intcat": (["carrier", "gate"], NUMERIC),
}


def variant_frame(kind: str, rows: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """`tiny_frame` (plus `gate`, integer codes 1..4) restricted to the columns of `kind`."""
    frame, y = tiny_frame(rows, seed)
    gate = np.random.default_rng(seed + 1000).integers(1, 5, rows)  # own stream: y unchanged
    cat, num = VARIANTS[kind]
    return frame.assign(gate=gate)[[*cat, *num]], y


def tiny_frame(rows: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Features with missing values in every column, and a label that depends on them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "carrier": pd.Series(rng.choice(["AA", "UA", "DL", None], rows), dtype=object),
            "origin": pd.Series(rng.choice(["EWR", "JFK", "LGA"], rows), dtype=object),
            "distance": rng.normal(1000, 400, rows),
            "temp": rng.normal(55, 15, rows),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "temp"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "distance"] = np.nan
    signal = (frame["carrier"] == "UA") * 1.0 + frame["temp"].fillna(55) / 30
    y = (signal + rng.normal(0, 0.7, rows) > 2.2).astype(int).to_numpy()
    return frame, y


def settings_for(tmp_path: Path, **overrides: object) -> ServiceSettings:
    base: dict[str, object] = {
        "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "mlflow_artifact_root": str(tmp_path / "mlruns"),
        "model_name": MODEL,
        "model_alias": "champion",
        "api_token": TOKEN,
        "api_retry_min_seconds": 0.2,
        "api_retry_max_seconds": 0.5,
        "api_poll_seconds": 0,
        "api_max_batch": 50,
    }
    base.update(overrides)
    return ServiceSettings(**base)  # type: ignore[arg-type]


def register_tiny(
    settings: ServiceSettings,
    c: float = 1.0,
    alias: str | None = "champion",
    pipeline: object = None,
    signature: bool = True,
    kind: str = "mixed",
    **config_extra: object,
) -> tuple[int, object]:
    """Fit (unless `pipeline` is given), log and register a tiny model -> (version, pipeline).
    With `signature=False` the model is a plain sklearn-flavour model without a signature;
    `kind` picks the feature lists (VARIANTS); `config_extra` goes into its model_config
    (e.g. target, positive, model_name)."""
    x, y = variant_frame(kind)
    cat, num = VARIANTS[kind]
    if pipeline is None:
        variant = VariantParams(penalty="l2", C=c, solver="lbfgs", max_iter=200)
        pipeline = build_pipeline(cat, num, variant, 0).fit(coerce_frame(x, cat, num), y)
    store = Tracking(settings)
    exp = store.experiment_id("tiny")
    if signature:
        config = {"categorical": cat, "numeric": num, "decision_threshold": 0.5, **config_extra}
        run_id = store.log_model_run(
            exp,
            "tiny",
            LoggedModel(pipeline, x, config),
            {"decision_threshold": 0.5, "C": c},
            {"roc_auc": 0.7},
            {"git.sha": "abc123", "data.train_md5": "d41d8"},
        )
    else:
        run_id = _log_unsigned(store, exp, pipeline)
    version = store.create_version(MODEL, run_id)
    if alias:
        store.client.set_registered_model_alias(MODEL, alias, version)
    return int(version), pipeline


def _log_unsigned(store: Tracking, experiment_id: str, pipeline: object) -> str:
    import tempfile

    import mlflow.sklearn

    run_id = str(store.client.create_run(experiment_id).info.run_id)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.sklearn.save_model(
            pipeline, f"{tmp}/model", serialization_format="skops", skops_trusted_types=TRUSTED
        )
        store.client.log_artifacts(run_id, f"{tmp}/model", "model")
    store.client.set_terminated(run_id)
    return run_id


def records(n: int, seed: int = 1, kind: str = "mixed") -> list[dict[str, object]]:
    """JSON-ready records (None for missing) with the columns of variant `kind`."""
    frame, _ = variant_frame(kind, n, seed)
    out = []
    for row in frame.to_dict("records"):
        out.append(
            {
                k: (
                    None
                    if isinstance(v, float) and np.isnan(v)
                    else (v.item() if isinstance(v, np.generic) else v)
                )
                for k, v in row.items()
            }
        )
    return out


def expected(pipeline: object, recs: list[dict[str, object]], kind: str = "mixed") -> np.ndarray:
    """The pipeline's own predict_proba for JSON records (missing categorical -> None; a
    categorical as training saw it, `category_string`)."""
    cat, num = VARIANTS[kind]
    frame = pd.DataFrame(index=range(len(recs)))
    for c in cat:  # built from the records: pandas would turn None into NaN
        frame[c] = pd.Series([category_string(r[c]) for r in recs], dtype=object)
    for c in num:
        frame[c] = np.array([np.nan if r[c] is None else r[c] for r in recs], dtype="float64")
    return pipeline.predict_proba(frame)[:, 1]  # type: ignore[attr-defined, no-any-return]


@contextmanager
def uvicorn_server(tmp_path: Path, env: dict[str, str], timeout: float = 60) -> Iterator[Any]:
    """A real `uvicorn ... create_app --factory` process on a free port, waited until /health
    answers -> (base URL, Popen)."""
    from flightdelay.stack.pgcluster import free_port
    from tests.conftest import venv_env

    port = free_port()
    cmd = ["uvicorn", "flightdelay.serving.app:create_app", "--factory", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--no-access-log", "--log-level", "warning"],
        cwd=tmp_path,
        env=venv_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def service_env(settings: ServiceSettings, **extra: str) -> dict[str, str]:
    """The environment a real service process needs to serve `settings`' registry."""
    return {
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MODEL_NAME": settings.model_name,
        "MODEL_ALIAS": settings.model_alias,
        "API_TOKEN": settings.api_token.get_secret_value(),
        "API_POLL_SECONDS": "0",
        "API_RETRY_MIN_SECONDS": "0.2",
        **extra,
    }


def rss_bytes(pid: int) -> int:
    """The resident set size of process `pid` (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def wait_until_ready(url: str, timeout: float = 60) -> None:
    """Block until `url`'s /ready answers 200."""
    end = time.monotonic() + timeout
    while httpx.get(f"{url}/ready").status_code != 200:
        assert time.monotonic() < end, httpx.get(f"{url}/ready").text
        time.sleep(0.1)
