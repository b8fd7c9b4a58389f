"""Benchmark the model service against `mlflow models serve` and an HTTP floor.

Needs the embedded champion (`make run`) and wrk (`make system-deps`). Every server runs with one
uvicorn worker and no access log (mlflow's own server logs as it does). Our service and the floor
take turns under wrk for a few short rounds and the medians are reported; readiness is the median
of a few cold starts. Writes reports/bench/serving.json. Stop other load first (`make stack-down`):
on 2 cores a busy neighbour moves these numbers by tens of percent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from flightdelay.core.config import load_params  # noqa: E402
from flightdelay.serving.cli import MLFLOW_CLIENT_ENV  # noqa: E402
from flightdelay.serving.client import records_from_split  # noqa: E402

OUT = ROOT / "reports/bench/serving.json"
TEST_SPLIT = ROOT / "data/processed/test.parquet"
ROUNDS = 5  # wrk runs per server and concurrency, taken in turns
ROUND_SECONDS = 4
READY_STARTS = 3  # cold starts of our service; the median is reported
ENV = {
    "DATABASE_URL": "sqlite:///data/interim/flights.db",
    "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
    "API_POLL_SECONDS": "0",
    **MLFLOW_CLIENT_ENV,  # what `flightdelay serve` starts the service with
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    """The servers' environment; MODEL_NAME from params.yaml, as `flightdelay serve` fills it."""
    e = dict(os.environ) | ENV
    e.setdefault("MODEL_NAME", load_params().registry.model_name)
    e["PATH"] = f"{ROOT / '.venv/bin'}{os.pathsep}{e['PATH']}"
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    return e


def start(
    cmd: list[str], ready_path: str, port: int, timeout: float = 120
) -> tuple[subprocess.Popen[bytes], float]:
    """Start a server; returns (process, seconds until `ready_path` answered 200)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}{ready_path}"
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            sys.exit(f"server exited: {' '.join(cmd)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc, round(time.perf_counter() - t0, 2)
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    proc.kill()
    sys.exit(f"server not ready after {timeout}s: {' '.join(cmd)}")


def uvicorn_cmd(app: str, port: int, *extra: str) -> list[str]:
    """One uvicorn worker, no access log: the same for our service and the floor."""
    return [
        "uvicorn",
        app,
        *extra,
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per measure, the median over runs (non-2xx: the total)."""
    out = {k: round(statistics.median(r[k] for r in runs), 3) for k in ("rps", "p50_ms", "p99_ms")}
    out["rps"] = round(out["rps"], 1)
    out["non_2xx"] = sum(int(r["non_2xx"]) for r in runs)
    return out


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def wrk(url: str, body: bytes, connections: int, seconds: int = 8) -> dict[str, float]:
    """requests/s and p50/p99 latency (ms) of POSTing `body` at `connections` concurrency."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body.json").write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'local f = io.open("{tmp}/body.json", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        )
        threads = min(2, connections)
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 3)

    return {
        "rps": round(rps, 1),
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def batch_rows_per_s(url: str, body: bytes, rows: int, repeats: int = 10) -> float:
    with httpx.Client(timeout=60) as c:
        assert (
            c.post(url, content=body, headers={"Content-Type": "application/json"}).status_code
            == 200
        )
        t0 = time.perf_counter()
        for _ in range(repeats):
            r = c.post(url, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 200, r.text[:200]
        return round(rows * repeats / (time.perf_counter() - t0), 0)


def in_process_rows_per_s(records: list[dict[str, Any]]) -> tuple[float, float]:
    """(predict_proba rows/s on a 10k frame, linear scorer rows/s on the same columns)."""
    import mlflow.artifacts
    import mlflow.sklearn
    import pandas as pd

    from flightdelay.core.estimator import coerce_frame
    from flightdelay.serving.runtime.compile import compile_pipeline

    uri, name = ENV["MLFLOW_TRACKING_URI"], load_params().registry.model_name
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}@champion",
            dst_path=tmp,
            tracking_uri=uri,
            registry_uri=uri,
        )
        model = mlflow.sklearn.load_model(local)
    tp = load_params().train
    frame = coerce_frame(pd.DataFrame(records), tp.categorical, tp.numeric)
    model.predict_proba(frame)
    t0 = time.perf_counter()
    for _ in range(5):
        model.predict_proba(frame)
    sk = len(frame) * 5 / (time.perf_counter() - t0)
    scorer = compile_pipeline(model)
    cols = {c: [r[c] for r in records] for c in (*tp.categorical, *tp.numeric)}
    t0 = time.perf_counter()
    for _ in range(5):
        scorer.score_columns(cols, len(records))
    lin = len(records) * 5 / (time.perf_counter() - t0)
    return round(sk, 0), round(lin, 0)


FLOOR_APP = """
from fastapi import FastAPI, Request
from fastapi.responses import Response
import orjson
app = FastAPI()
@app.post("/predict")
async def predict(request: Request) -> Response:
    body = orjson.loads(await request.body())
    answer = b'{"predictions":[{"probability":0.5,"delayed":false}]}'
    return Response(answer, media_type="application/json")
@app.get("/ready")
async def ready() -> dict:
    return {"ready": True}
"""


def main() -> None:
    if not TEST_SPLIT.is_file() or not (ROOT / "mlflow.db").is_file():
        sys.exit("no champion yet: run `make run` first")
    if not shutil.which("wrk"):
        sys.exit("wrk not installed: run `make system-deps`")
    os.chdir(ROOT)
    records = records_from_split(TEST_SPLIT, 10_000)
    single = json.dumps(records[0]).encode()
    result: dict[str, Any] = {"workers": 1, "access_log": "off (mlflow models serve: its default)"}

    # --- ours, then the HTTP floor beside it ---------------------------------------------------
    # Both stay up and take turns under wrk (ROUNDS short runs each, medians reported), so drift
    # in the machine's speed hits both alike instead of skewing the ratio.
    ready_runs = []
    for _ in range(READY_STARTS):  # cold start to /ready 200, a few times: it varies
        port = free_port()
        cmd = uvicorn_cmd("flightdelay.serving.app:create_app", port, "--factory")
        ours, seconds = start(cmd, "/ready", port)
        ready_runs.append(seconds)
        if len(ready_runs) < READY_STARTS:
            stop(ours)
    ready_s = round(statistics.median(ready_runs), 2)
    result["ready_after_start_runs_s"] = ready_runs
    url = f"http://127.0.0.1:{port}/predict"
    result["ready_after_start_s"] = ready_s
    tmp = tempfile.TemporaryDirectory()
    (Path(tmp.name) / "floor_app.py").write_text(FLOOR_APP)
    floor_port = free_port()
    floor, _ = start(
        uvicorn_cmd("floor_app:app", floor_port, "--app-dir", tmp.name), "/ready", floor_port
    )
    floor_url = f"http://127.0.0.1:{floor_port}/predict"
    try:
        ours_runs: dict[str, list[dict[str, float]]] = {"c1": [], "c32": []}
        floor_runs: dict[str, list[dict[str, float]]] = {"c1": [], "c32": []}
        for c in (1, 32):
            for _ in range(ROUNDS):
                ours_runs[f"c{c}"].append(wrk(url, single, c, ROUND_SECONDS))
                floor_runs[f"c{c}"].append(wrk(floor_url, single, c, ROUND_SECONDS))
        result["rounds"] = {"count": ROUNDS, "seconds": ROUND_SECONDS, "statistic": "median"}
        result["ours_single"] = {k: median_run(v) for k, v in ours_runs.items()}
        result["floor_single"] = {k: median_run(v) for k, v in floor_runs.items()}
        batches: dict[str, float] = {}
        for n in (1_000, 10_000):
            recs = records[:n]
            batches[f"records_{n}"] = batch_rows_per_s(url, json.dumps(recs).encode(), n)
            cols = {"columns": {k: [r[k] for r in recs] for k in recs[0]}}
            batches[f"columns_{n}"] = batch_rows_per_s(url, json.dumps(cols).encode(), n)
        result["ours_batch_rows_per_s"] = batches
    finally:
        stop(ours)
        stop(floor)
        tmp.cleanup()

    # --- mlflow models serve ------------------------------------------------------------------
    port = free_port()
    mlf, mlf_ready = start(
        [
            "mlflow",
            "models",
            "serve",
            "-m",
            f"models:/{load_params().registry.model_name}@champion",
            "--env-manager",
            "local",
            "-p",
            str(port),
            "-w",
            "1",
            "-h",
            "127.0.0.1",
        ],
        "/ping",
        port,
        timeout=180,
    )
    try:
        body = json.dumps({"dataframe_records": [records[0]]}).encode()
        result["mlflow_serve_ready_s"] = mlf_ready
        result["mlflow_serve_single"] = {
            f"c{c}": wrk(f"http://127.0.0.1:{port}/invocations", body, c) for c in (1, 32)
        }
    finally:
        stop(mlf)

    sk, lin = in_process_rows_per_s(records)
    result["in_process_predict_proba_rows_per_s_10k"] = sk
    result["in_process_linear_scorer_rows_per_s_10k"] = lin

    o, f, m = result["ours_single"], result["floor_single"], result["mlflow_serve_single"]
    checks = {
        "single_rps_vs_mlflow_serve_min_30x": round(min(o[c]["rps"] / m[c]["rps"] for c in o), 1),
        "single_rps_vs_floor_min_0.85": round(min(o[c]["rps"] / f[c]["rps"] for c in o), 3),
        "p99_ms_at_c32_max_20": o["c32"]["p99_ms"],
        "batch_10k_vs_in_process_min_0.5": round(
            max(
                result["ours_batch_rows_per_s"]["columns_10000"],
                result["ours_batch_rows_per_s"]["records_10000"],
            )
            / sk,
            3,
        ),
        "ready_s_max_3": ready_s,
    }
    result["targets"] = checks
    result["meets"] = {
        "30x_mlflow_serve": checks["single_rps_vs_mlflow_serve_min_30x"] >= 30,
        "85pct_floor": checks["single_rps_vs_floor_min_0.85"] >= 0.85,
        "p99_20ms": checks["p99_ms_at_c32_max_20"] <= 20,
        "batch_50pct": checks["batch_10k_vs_in_process_min_0.5"] >= 0.5,
        "ready_3s": ready_s <= 3,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
