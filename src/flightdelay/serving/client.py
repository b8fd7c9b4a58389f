"""A small HTTP client for the service, and the demo that exercises every endpoint."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from flightdelay.core.config import get_pipeline_settings, load_params
from flightdelay.core.errors import UserError


def _client(host: str) -> httpx.Client:
    return httpx.Client(base_url=host.rstrip("/"), timeout=30.0)


def post_predict(host: str, body: Any) -> tuple[int, Any]:
    """POST `body` to /predict; returns (status, JSON answer)."""
    try:
        with _client(host) as c:
            r = c.post("/predict", json=body)
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach the service at {host}: {exc}") from None
    return r.status_code, r.json()


def records_from_split(path: Path, n: int) -> list[dict[str, Any]]:
    """`n` realistic records (the model's input columns) from a test split parquet file."""
    import pandas as pd

    if not path.is_file():
        raise UserError(f"{path} not found: run `make run` first")
    tp = load_params(get_pipeline_settings().params_path).train
    frame = pd.read_parquet(path, columns=[*tp.categorical, *tp.numeric]).sample(n, random_state=7)
    out = []
    for row in frame.to_dict("records"):
        rec: dict[str, Any] = {}
        for key, v in row.items():
            k = str(key)
            if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
                rec[k] = None
            elif k in tp.numeric:
                rec[k] = float(v)
            else:
                rec[k] = str(v)
        out.append(rec)
    return out


def run_demo(host: str, split: Path, out: Path, batch: int, token: str) -> int:
    """Call every endpoint; append each request/response pair to `out` (JSON lines)."""
    records = records_from_split(split, max(batch, 1))
    auth = {"Authorization": f"Bearer {token}"}
    calls: list[tuple[str, str, Any, dict[str, str]]] = [
        ("GET", "/health", None, {}),
        ("GET", "/ready", None, {}),
        ("GET", "/model", None, {}),
        ("POST", "/predict", records[0], {}),
        ("POST", "/predict", records[:batch], {}),
        (
            "POST",
            "/predict",
            {"columns": {k: [r[k] for r in records[:batch]] for k in records[0]}},
            {},
        ),
        ("POST", "/predict", {**records[0], "carrier": 42}, {}),
        ("POST", "/model", {"alias": "challenger"}, auth),
        ("GET", "/model", None, {}),
        ("POST", "/model/reload", None, auth),
        ("GET", "/model", None, {}),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _client(host) as c, out.open("w") as fh:
            for method, path, body, headers in calls:
                r = c.request(method, path, json=body, headers=headers)
                try:
                    answer: Any = r.json()
                except ValueError:
                    answer = r.text
                fh.write(
                    json.dumps(
                        {
                            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                            "request": {"method": method, "path": path, "body": body},
                            "response": {
                                "status": r.status_code,
                                "body": answer,
                                "ms": round(r.elapsed.total_seconds() * 1000, 2),
                            },
                        }
                    )
                    + "\n"
                )
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach the service at {host}: {exc}") from None
    return len(calls)
