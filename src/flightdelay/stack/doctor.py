"""`flightdelay stack doctor`: one line per check of the running stack, each with a fix hint."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from flightdelay.core.config import StackSettings
from flightdelay.stack.manager import VENV_BIN, s3_client
from flightdelay.stack.render import pg_url


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str


def _run(name: str, hint: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(name, True, fn(), hint)
    except Exception as exc:
        return Check(
            name,
            False,
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}",
            hint,
        )


def run_checks(settings: StackSettings) -> list[Check]:
    """Every check, in dependency order (later ones may fail because of earlier ones)."""
    api = f"http://127.0.0.1:{settings.nginx_http_port}"
    mlflow = f"http://127.0.0.1:{settings.nginx_mlflow_port}"
    auth = (settings.mlflow_tracking_username, settings.mlflow_tracking_password.get_secret_value())

    def expect(url: str, status: int, **kw: object) -> str:
        r = httpx.get(url, timeout=5, **kw)  # type: ignore[arg-type]
        if r.status_code != status:
            raise RuntimeError(f"{url} answered {r.status_code}, expected {status}")
        return f"{url} -> {status}"

    def database() -> str:
        from sqlalchemy import create_engine, text

        engine = create_engine(pg_url(settings, settings.postgres_features_db))
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname='public'")
            ).scalar_one()
        engine.dispose()
        return f"features DB reachable, {tables} tables"

    def readonly_role() -> str:
        import psycopg2

        psycopg2.connect(
            host="127.0.0.1",
            port=settings.postgres_port,
            user=settings.postgres_readonly_user,
            password=settings.postgres_readonly_password.get_secret_value(),
            dbname=settings.postgres_features_db,
            connect_timeout=3,
        ).close()
        return f"role {settings.postgres_readonly_user} can connect"

    def buckets() -> str:
        names = {b["Name"] for b in s3_client(settings).list_buckets()["Buckets"]}  # type: ignore[attr-defined]
        missing = {settings.s3_bucket_mlflow, settings.s3_bucket_dvc} - names
        if missing:
            raise RuntimeError(f"missing bucket(s) {', '.join(sorted(missing))}")
        both = f"{settings.s3_bucket_mlflow}, {settings.s3_bucket_dvc}"
        return f"buckets {both} exist (credentials accepted)"

    def upload() -> str:
        client = s3_client(settings)
        data = os.urandom(2 * 1024 * 1024)
        key = "doctor/probe.bin"
        client.put_object(Bucket=settings.s3_bucket_dvc, Key=key, Body=data)  # type: ignore[attr-defined]
        back = client.get_object(Bucket=settings.s3_bucket_dvc, Key=key)["Body"].read()  # type: ignore[attr-defined]
        client.delete_object(Bucket=settings.s3_bucket_dvc, Key=key)  # type: ignore[attr-defined]
        if back != data:
            raise RuntimeError("the object read back differs")
        return "2 MB put/get/delete through nginx"

    def artifact_root() -> str:
        r = httpx.get(
            f"{mlflow}/api/2.0/mlflow/experiments/get",
            params={"experiment_id": "0"},
            auth=auth,
            timeout=5,
        )
        r.raise_for_status()
        location = r.json()["experiment"]["artifact_location"]
        if not location.startswith("mlflow-artifacts:"):
            raise RuntimeError(
                f"artifact root {location} is not proxied (clients would need S3 keys)"
            )
        return f"artifact root {location}"

    def dvc_remote() -> str:
        out = subprocess.run(
            [str(VENV_BIN / "dvc"), "remote", "list"], capture_output=True, text=True, check=True
        ).stdout
        if f"s3://{settings.s3_bucket_dvc}" not in out:
            raise RuntimeError("no remote on the dvc bucket")
        return out.strip().splitlines()[0]

    return [
        _run(
            "api via nginx",
            "make stack-status; see .stack/logs/api1.log",
            lambda: expect(f"{api}/health", 200),
        ),
        _run(
            "api ready (champion loaded)",
            "run `dvc repro` with the stack's settings",
            lambda: expect(f"{api}/ready", 200),
        ),
        _run(
            "api over TLS",
            "the certificate is in .stack/nginx/tls.crt",
            lambda: expect(
                f"https://127.0.0.1:{settings.nginx_https_port}/health", 200, verify=False
            ),
        ),
        _run(
            "mlflow requires auth",
            "nginx should answer 401 without credentials",
            lambda: expect(f"{mlflow}/health", 401),
        ),
        _run(
            "mlflow with credentials",
            "check MLFLOW_TRACKING_USERNAME/PASSWORD in .env",
            lambda: expect(f"{mlflow}/health", 200, auth=auth),
        ),
        _run(
            "pgadmin via nginx",
            "see .stack/logs/pgadmin.log",
            lambda: expect(f"http://127.0.0.1:{settings.nginx_pgadmin_port}/misc/ping", 200),
        ),
        _run(
            "features database", "check POSTGRES_* in .env; see .stack/logs/postgres.log", database
        ),
        _run("read-only role", "run `make stack-up` again (it re-creates the role)", readonly_role),
        _run(
            "s3 credentials and buckets",
            "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; `make stack-up`",
            buckets,
        ),
        _run(
            "s3 >1 MB upload via proxy",
            "nginx needs client_max_body_size 0 and Host $http_host",
            upload,
        ),
        _run(
            "mlflow artifacts proxied",
            "start mlflow with --serve-artifacts and no default root",
            artifact_root,
        ),
        _run(
            "dvc remote",
            "run `make stack-up` in the repo (it writes .dvc/config.local)",
            dvc_remote,
        ),
    ]
