"""`flightdelay stack doctor`: one line per check of the running stack, each with a fix hint."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from flightdelay.core.config import StackSettings
from flightdelay.stack.clients import pg_connect, pg_url, s3_client
from flightdelay.stack.layout import VENV_BIN


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str


def _auth(s: StackSettings) -> tuple[str, str]:
    return s.mlflow_tracking_username, s.mlflow_tracking_password.get_secret_value()


def _expect(url: str, status: int, **kw: Any) -> str:
    r = httpx.get(url, timeout=5, **kw)
    if r.status_code != status:
        raise RuntimeError(f"{url} answered {r.status_code}, expected {status}")
    return f"{url} -> {status}"


def _http(
    path: str, status: int, kind: str, scheme: str = "http", auth: bool = False, **kw: Any
) -> Callable[[StackSettings], str]:
    """A check that nginx's `kind` port answers `status` on `path` (with MLflow's credentials
    when `auth`)."""

    def check(s: StackSettings) -> str:
        port = getattr(s, f"nginx_{kind}_port")
        extra = dict(kw, auth=_auth(s)) if auth else kw
        return _expect(f"{scheme}://127.0.0.1:{port}{path}", status, **extra)

    return check


def postgres_down(s: StackSettings) -> str:
    """Why Postgres refuses the owner's login ("" when it accepts it)."""
    import psycopg2

    try:
        pg_connect(s, "postgres").close()
        return ""
    except psycopg2.Error as exc:
        return (str(exc).strip().splitlines() or ["no answer"])[0][:120]


def mlflow_store(s: StackSettings) -> str:
    """A REST call that needs MLflow's backend store, through nginx with the credentials; when it
    fails and Postgres is why, the error names Postgres."""
    url = f"http://127.0.0.1:{s.nginx_mlflow_port}/api/2.0/mlflow/experiments/search"
    why = ""
    try:
        status = httpx.get(url, params={"max_results": 1}, auth=_auth(s), timeout=10).status_code
    except httpx.HTTPError as exc:
        status, why = 0, f"{type(exc).__name__}"
    if status == 200:
        return f"{url} -> 200 (backend store answers)"
    pg = postgres_down(s)
    if pg:
        where = f"127.0.0.1:{s.postgres_port}"
        raise RuntimeError(f"MLflow's backend store, Postgres {where}, is down: {pg}")
    raise RuntimeError(f"{url} answered {status or why}, expected 200")


def database(s: StackSettings) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url(s, s.postgres_features_db))
    query = text("SELECT count(*) FROM pg_tables WHERE schemaname='public'")
    with engine.connect() as conn:
        tables = conn.execute(query).scalar_one()
    engine.dispose()
    return f"features DB reachable, {tables} tables"


def readonly_role(s: StackSettings) -> str:
    password = s.postgres_readonly_password.get_secret_value()
    pg_connect(s, s.postgres_features_db, s.postgres_readonly_user, password).close()
    return f"role {s.postgres_readonly_user} can connect"


def buckets(s: StackSettings) -> str:
    names = {b["Name"] for b in s3_client(s).list_buckets()["Buckets"]}
    missing = {s.s3_bucket_mlflow, s.s3_bucket_dvc} - names
    if missing:
        raise RuntimeError(f"missing bucket(s) {', '.join(sorted(missing))}")
    return f"buckets {s.s3_bucket_mlflow}, {s.s3_bucket_dvc} exist (credentials accepted)"


def upload(s: StackSettings) -> str:
    client, data, key = s3_client(s), os.urandom(2 * 1024 * 1024), "doctor/probe.bin"
    client.put_object(Bucket=s.s3_bucket_dvc, Key=key, Body=data)
    back = client.get_object(Bucket=s.s3_bucket_dvc, Key=key)["Body"].read()
    client.delete_object(Bucket=s.s3_bucket_dvc, Key=key)
    if back != data:
        raise RuntimeError("the object read back differs")
    return "2 MB put/get/delete through nginx"


def artifact_root(s: StackSettings) -> str:
    url = f"http://127.0.0.1:{s.nginx_mlflow_port}/api/2.0/mlflow/experiments/get"
    r = httpx.get(url, params={"experiment_id": "0"}, auth=_auth(s), timeout=5)
    r.raise_for_status()
    location = r.json()["experiment"]["artifact_location"]
    if not location.startswith("mlflow-artifacts:"):
        raise RuntimeError(f"artifact root {location} is not proxied (clients would need S3 keys)")
    return f"artifact root {location}"


def _prometheus_api(s: StackSettings, path: str) -> Any:
    url = f"http://127.0.0.1:{s.nginx_mlflow_port}/prometheus/api/v1/{path}"
    r = httpx.get(url, auth=_auth(s), timeout=5)
    r.raise_for_status()
    return r.json()["data"]


def prometheus_targets(s: StackSettings, wait: float = 12) -> str:
    """Every API replica and MLflow answer Prometheus's scrapes (a target not scraped yet, right
    after a start, is waited for up to `wait` seconds: the scrape interval is 5 s)."""
    import time

    end = time.monotonic() + wait
    while True:
        targets = _prometheus_api(s, "targets?state=active")["activeTargets"]
        jobs = [t for t in targets if t["labels"]["job"] in ("api", "mlflow")]
        if all(t["health"] != "unknown" for t in jobs) or time.monotonic() > end:
            break
        time.sleep(1)
    down = [
        f"{t['labels'].get('replica') or t['labels']['job']} {t['health']}"
        + (f" ({t['lastError']})" if t["lastError"] else " (not scraped yet)")
        for t in jobs
        if t["health"] != "up"
    ]
    if not jobs or down:
        raise RuntimeError(f"targets not up: {', '.join(down) or 'none configured'}")
    return f"{len(jobs)} targets up (api replicas, mlflow)"


def prometheus_rules(s: StackSettings) -> str:
    groups = [
        g for g in _prometheus_api(s, "rules")["groups"] if g["name"].startswith("flightdelay")
    ]
    alerts = [r for g in groups for r in g["rules"] if r["type"] == "alerting"]
    if not alerts:
        raise RuntimeError("no flightdelay alert rules loaded")
    return f"{len(groups)} rule groups, {len(alerts)} alerts loaded"


def dvc_remote(s: StackSettings) -> str:
    cmd = [str(VENV_BIN / "dvc"), "remote", "list"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if f"s3://{s.s3_bucket_dvc}" not in out:
        raise RuntimeError("no remote on the dvc bucket")
    return out.strip().splitlines()[0]


# (name, fix hint, check) in dependency order (later ones may fail because of earlier ones)
CHECKS: list[tuple[str, str, Callable[[StackSettings], str]]] = [
    ("api via nginx", "make stack-status; see .stack/logs/api1.log", _http("/health", 200, "http")),
    (
        "api ready (champion loaded)",
        "run `dvc repro` with the stack's settings",
        _http("/ready", 200, "http"),
    ),
    (
        "api over TLS",
        "the certificate is in .stack/nginx/tls.crt",
        _http("/health", 200, "https", "https", verify=False),
    ),
    (
        "mlflow requires auth",
        "MLflow's basic-auth app should answer 401 without credentials (--app-name basic-auth)",
        _http("/api/2.0/mlflow/experiments/search?max_results=1", 401, "mlflow"),
    ),
    (
        "mlflow with credentials",
        "401: MLFLOW_TRACKING_USERNAME/PASSWORD; Postgres named: see .stack/logs/postgres.log",
        mlflow_store,
    ),
    (
        "prometheus requires auth",
        "nginx's /prometheus/ location should answer 401 without credentials",
        _http("/prometheus/-/ready", 401, "mlflow"),
    ),
    (
        "prometheus ready",
        "see .stack/logs/prometheus.log",
        _http("/prometheus/-/ready", 200, "mlflow", auth=True),
    ),
    (
        "prometheus targets up",
        "Prometheus UI /prometheus/targets names the error; .stack/logs/api*.log, mlflow.log",
        prometheus_targets,
    ),
    (
        "prometheus rules loaded",
        "promtool check rules deploy/prometheus/rules/*.yml; .stack/logs/prometheus.log",
        prometheus_rules,
    ),
    ("pgadmin via nginx", "see .stack/logs/pgadmin.log", _http("/misc/ping", 200, "pgadmin")),
    ("features database", "check POSTGRES_* in .env; see .stack/logs/postgres.log", database),
    ("read-only role", "run `make stack-up` again (it re-creates the role)", readonly_role),
    (
        "s3 credentials and buckets",
        "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; `make stack-up`",
        buckets,
    ),
    ("s3 >1 MB upload via proxy", "nginx needs client_max_body_size 0 and Host $http_host", upload),
    (
        "mlflow artifacts proxied",
        "start mlflow with --serve-artifacts and no default root",
        artifact_root,
    ),
    ("dvc remote", "run `make stack-up` in the repo (it writes .dvc/config.local)", dvc_remote),
]


def _run(name: str, hint: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(name, True, fn(), hint)
    except Exception as exc:
        first = str(exc).splitlines()[0][:120] if str(exc) else ""
        return Check(name, False, f"{type(exc).__name__}: {first}", hint)


def run_checks(settings: StackSettings) -> list[Check]:
    """Every check of CHECKS, in order."""
    return [_run(name, hint, partial(fn, settings)) for name, hint, fn in CHECKS]
