"""Benchmark the model service against two floors and `mlflow models serve`, with one method.

Servers: ours (`flightdelay.serving.app:create_app`), the "FastAPI floor" (a FastAPI endpoint
taking a pydantic model of the same fields and answering a constant), the "ASGI floor" (a bare
ASGI app on uvicorn answering constant bytes: the limit), and `mlflow models serve`. Every server
runs with one uvicorn worker (mlflow: one gunicorn/uvicorn worker), no access log, pinned to core 0
(`taskset -c 0`); wrk runs pinned to core 1. The servers stay up and take turns under wrk for
ROUNDS short rounds (alternating, so drift in the machine's speed hits all alike); medians are
reported, with p99. Batches: 10,000 rows columnar and as a list of records over HTTP (this process
on core 1), against in-process `predict_proba` on core 0. API_WORKERS=2: our service with two
workers on both cores, wrk beside it (a floor, not a target). Bounded: about 3 minutes.

Needs the embedded champion (`make run`) and wrk (`make system-deps`). Writes
reports/bench/serving.json. On a busy machine the numbers are noisy; the ratios to the floors,
measured in the same rounds, are what to read.
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
from collections.abc import Iterator
from contextlib import contextmanager
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
ROUNDS = 3  # wrk runs per server and concurrency, taken in turns
ROUND_SECONDS = 4
READY_STARTS = 3  # cold starts of our service; the median is reported
SERVER_CPU, CLIENT_CPU = "0", "1"
ENV = {
    "DATABASE_URL": "sqlite:///data/interim/flights.db",
    "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
    "API_POLL_SECONDS": "0",
    **MLFLOW_CLIENT_ENV,  # what `flightdelay serve` starts the service with
}

ASGI_FLOOR = """
ANSWER = b'{"predictions":[{"probability":0.5,"delayed":false}]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
"""

FASTAPI_FLOOR = """
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import ConfigDict, Field, Strict, create_model
from typing import Annotated
CATEGORICAL, NUMERIC = {categorical!r}, {numeric!r}
Category = Annotated[str, Strict()] | Annotated[int, Strict()] | None
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)] | None
Record = create_model(
    "Record", __config__=ConfigDict(extra="forbid"),
    **{{c: (Category, ...) for c in CATEGORICAL}}, **{{c: (Number, ...) for c in NUMERIC}},
)
ANSWER = b'{{"predictions":[{{"probability":0.5,"delayed":false}}]}}'
app = FastAPI()
@app.post("/predict")
async def predict(record: Record) -> Response:
    return Response(ANSWER, media_type="application/json")
"""


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
    cmd: list[str], ready_path: str, port: int, cpus: str = SERVER_CPU, timeout: float = 120
) -> tuple[subprocess.Popen[bytes], float]:
    """Start a server pinned to `cpus`; returns (process, seconds until `ready_path` answered
    (any status but 5xx: the floors answer 405 or 404 to a GET))."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["taskset", "-c", cpus, *cmd],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}{ready_path}"
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            sys.exit(f"server exited: {' '.join(cmd)}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return proc, round(time.perf_counter() - t0, 2)
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    stop(proc)
    sys.exit(f"server not ready after {timeout}s: {' '.join(cmd)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# our service as every launcher runs it: the factory and the limited protocol (header size and
# slow-client limits, serving/protocol.py); the floors run uvicorn's own protocol
OURS = ("--factory", "--http", "flightdelay.serving.protocol:LimitedHttpToolsProtocol")


def uvicorn_cmd(app: str, port: int, *extra: str, workers: int = 1) -> list[str]:
    """uvicorn, no access log: the same for our service and the floors."""
    return [
        *("uvicorn", app, *extra, "--port", str(port), "--workers", str(workers)),
        *("--no-access-log", "--log-level", "warning"),
    ]


def wrk(url: str, body: bytes, connections: int, seconds: int, cpus: str = CLIENT_CPU) -> dict:
    """requests/s and p50/p99 latency (ms) of POSTing `body` at `connections` concurrency."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body.json").write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'local f = io.open("{tmp}/body.json", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        )
        cmd = ["taskset", "-c", cpus, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
        out = subprocess.run(
            [*cmd, "--latency", "-s", str(script), url], capture_output=True, text=True, check=True
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": round(rps, 1),
        "p50_ms": percentile(out, "50"),
        "p99_ms": percentile(out, "99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def percentile(out: str, p: str) -> float:
    m = re.search(rf"\s{p}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 3)


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per measure, the median over runs (non-2xx: the total)."""
    out = {k: round(statistics.median(r[k] for r in runs), 3) for k in ("rps", "p50_ms", "p99_ms")}
    out["rps"] = round(out["rps"], 1)
    out["non_2xx"] = sum(int(r["non_2xx"]) for r in runs)
    return out


def rounds(urls: dict[str, str], body: bytes, concurrency: tuple[int, ...]) -> dict[str, Any]:
    """Every server in turn under wrk, ROUNDS times per concurrency; medians per server."""
    runs: dict[str, dict[str, list[dict[str, float]]]] = {s: {} for s in urls}
    for c in concurrency:
        for _ in range(ROUNDS):
            for server, url in urls.items():
                runs[server].setdefault(f"c{c}", []).append(wrk(url, body, c, ROUND_SECONDS))
    return {s: {c: median_run(r) for c, r in by_c.items()} for s, by_c in runs.items()}


@contextmanager
def pinned(cpu: int) -> Iterator[None]:
    """Pin this process to `cpu` until the block ends."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def batch_rows_per_s(url: str, body: bytes, rows: int, repeats: int = 15) -> float:
    """Rows/s of POSTing a batch body again and again (the median request)."""
    headers = {"Content-Type": "application/json"}
    times = []
    with pinned(int(CLIENT_CPU)), httpx.Client(timeout=60) as c:
        for i in range(repeats + 2):
            t0 = time.perf_counter()
            r = c.post(url, content=body, headers=headers)
            assert r.status_code == 200, r.text[:200]
            if i >= 2:  # two warm-up requests
                times.append(time.perf_counter() - t0)
    return round(rows / statistics.median(times), 0)


def best_rate(rows: int, run: Any, repeats: int = 7) -> float:
    """Rows/s of `run()` on `rows` rows (the median of `repeats` runs), pinned to the server's
    core."""
    with pinned(int(SERVER_CPU)):
        run()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    return round(rows / statistics.median(times), 0)


def in_process_rows_per_s(records: list[dict[str, Any]]) -> tuple[float, float]:
    """(predict_proba rows/s on a 10k frame, compiled scorer rows/s on the same columns)."""
    import mlflow.artifacts
    import pandas as pd

    from flightdelay.core.estimator import coerce_frame
    from flightdelay.serving.runtime.batch import score_batch
    from flightdelay.serving.runtime.compile import compile_pipeline
    from flightdelay.serving.runtime.download import read_pipeline

    uri, name = ENV["MLFLOW_TRACKING_URI"], load_params().registry.model_name
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}@champion",
            dst_path=tmp,
            tracking_uri=uri,
            registry_uri=uri,
        )
        model = read_pipeline(Path(local))
    tp = load_params().train
    frame = coerce_frame(pd.DataFrame(records), tp.categorical, tp.numeric)
    sk = best_rate(len(frame), lambda: model.predict_proba(frame))
    scorer = compile_pipeline(model)
    cols = {c: [r[c] for r in records] for c in (*tp.categorical, *tp.numeric)}
    lin = best_rate(len(records), lambda: score_batch(scorer, cols, len(records)))
    return sk, lin


def cold_starts() -> tuple[subprocess.Popen[bytes], int, list[float]]:
    """Start our service READY_STARTS times (cold start to /ready 200); the last one stays."""
    runs = []
    for i in range(READY_STARTS):
        port = free_port()
        cmd = uvicorn_cmd("flightdelay.serving.app:create_app", port, *OURS)
        ours, seconds = start(cmd, "/ready", port)
        runs.append(seconds)
        if i < READY_STARTS - 1:
            stop(ours)
    return ours, port, runs


def floors(tmp: Path) -> dict[str, tuple[subprocess.Popen[bytes], int]]:
    """The two floors, started from source written to `tmp`."""
    tp = load_params().train
    (tmp / "asgi_floor.py").write_text(ASGI_FLOOR)
    source = FASTAPI_FLOOR.format(categorical=list(tp.categorical), numeric=list(tp.numeric))
    (tmp / "fastapi_floor.py").write_text(source)
    out = {}
    for server, app in (("asgi_floor", "asgi_floor:app"), ("fastapi_floor", "fastapi_floor:app")):
        port = free_port()
        proc, _ = start(uvicorn_cmd(app, port, "--app-dir", str(tmp)), "/", port)
        out[server] = (proc, port)
    return out


def batches(url: str, records: list[dict[str, Any]]) -> dict[str, float]:
    """Our rows/s for 10,000 rows, columnar and as a list of records."""
    cols = {"columns": {k: [r[k] for r in records] for k in records[0]}}
    return {
        "columns_10000": batch_rows_per_s(url, json.dumps(cols).encode(), len(records)),
        "records_10000": batch_rows_per_s(url, json.dumps(records).encode(), len(records)),
    }


def mlflow_serve(body: bytes) -> dict[str, Any]:
    """`mlflow models serve` (one worker, pinned like the others): ready time, c=1 and c=32."""
    port = free_port()
    model = f"models:/{load_params().registry.model_name}@champion"
    cmd = ["mlflow", "models", "serve", "-m", model, "--env-manager", "local"]
    proc, ready = start(
        [*cmd, "-p", str(port), "-w", "1", "-h", "127.0.0.1"], "/ping", port, timeout=180
    )
    try:
        url = f"http://127.0.0.1:{port}/invocations"
        return {"ready_s": ready} | {f"c{c}": wrk(url, body, c, ROUND_SECONDS) for c in (1, 32)}
    finally:
        stop(proc)


def two_workers(body: bytes) -> dict[str, Any]:
    """Our service with API_WORKERS=2 on both cores (wrk shares them): c=32."""
    port = free_port()
    cmd = uvicorn_cmd("flightdelay.serving.app:create_app", port, *OURS, workers=2)
    proc, _ = start(cmd, "/ready", port, cpus="0,1")
    try:
        time.sleep(2)  # both workers up (the first answering /ready is not enough)
        url = f"http://127.0.0.1:{port}/predict"
        runs = [wrk(url, body, 32, ROUND_SECONDS, cpus="0,1") for _ in range(ROUNDS)]
        return {"c32": median_run(runs)}
    finally:
        stop(proc)


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, as measured, and whether each is met."""
    single = result["single"]
    ours, asgi, mlf = single["ours"], single["asgi_floor"], result["mlflow_serve"]
    sk = result["in_process_rows_per_s"]["predict_proba"]
    b = result["ours_batch_rows_per_s"]
    values = {
        "vs_asgi_floor_c32": round(ours["c32"]["rps"] / asgi["c32"]["rps"], 3),
        "vs_asgi_floor_c1": round(ours["c1"]["rps"] / asgi["c1"]["rps"], 3),
        "p99_ms_c32": ours["c32"]["p99_ms"],
        "vs_mlflow_serve_c32": round(ours["c32"]["rps"] / mlf["c32"]["rps"], 1),
        "vs_mlflow_serve_c1": round(ours["c1"]["rps"] / mlf["c1"]["rps"], 1),
        "columns_10k_vs_predict_proba": round(b["columns_10000"] / sk, 3),
        "records_10k_vs_predict_proba": round(b["records_10000"] / sk, 3),
        "workers_2_vs_1_c32": round(result["workers_2"]["c32"]["rps"] / ours["c32"]["rps"], 3),
        "ready_s": result["ready_after_start_s"],
    }
    floor = {
        "vs_asgi_floor_c32": 0.5,
        "vs_asgi_floor_c1": 0.8,
        "vs_mlflow_serve_c32": 100,
        "vs_mlflow_serve_c1": 60,
        "columns_10k_vs_predict_proba": 1.0,
        "records_10k_vs_predict_proba": 0.5,
    }
    meets = {k: values[k] >= v for k, v in floor.items()}
    meets["p99_ms_c32"] = values["p99_ms_c32"] <= 3
    meets["ready_s"] = values["ready_s"] <= 3
    maximums = {"p99_ms_c32": 3, "ready_s": 3}
    return {"values": values, "minimums": floor, "maximums": maximums, "meets": meets}


def measure(records: list[dict[str, Any]], single: bytes) -> dict[str, Any]:
    """Every measurement but mlflow serve and the in-process rates."""
    result: dict[str, Any] = {}
    ours, port, ready_runs = cold_starts()
    result["ready_after_start_runs_s"] = ready_runs
    result["ready_after_start_s"] = round(statistics.median(ready_runs), 2)
    with tempfile.TemporaryDirectory() as tmp:
        servers = floors(Path(tmp))
        try:
            urls = {"ours": f"http://127.0.0.1:{port}/predict"} | {
                s: f"http://127.0.0.1:{p}/predict" for s, (_, p) in servers.items()
            }
            result["single"] = rounds(urls, single, (1, 32))
            result["ours_batch_rows_per_s"] = batches(urls["ours"], records)
        finally:
            for proc in (ours, *(p for p, _ in servers.values())):
                stop(proc)
    result["workers_2"] = two_workers(single)
    return result


def main() -> None:
    if not TEST_SPLIT.is_file() or not (ROOT / "mlflow.db").is_file():
        sys.exit("no champion yet: run `make run` first")
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not installed: run `make system-deps`")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs 2 cores: the server on one, wrk on the other")
    os.chdir(ROOT)
    started = time.perf_counter()
    records = records_from_split(TEST_SPLIT, 10_000)
    single = json.dumps(records[0]).encode()
    result: dict[str, Any] = {
        "method": f"server on core {SERVER_CPU}, wrk -t1 on core {CLIENT_CPU}; {ROUNDS} "
        f"alternating rounds of {ROUND_SECONDS} s per server and concurrency; medians",
        "workers": 1,
        "access_log": "off (mlflow models serve: its default)",
    }
    sk, lin = in_process_rows_per_s(records)
    result["in_process_rows_per_s"] = {"predict_proba": sk, "compiled_scorer": lin}
    result |= measure(records, single)
    result["mlflow_serve"] = mlflow_serve(json.dumps({"dataframe_records": [records[0]]}).encode())
    result["targets"] = targets(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
