"""Secure by default on the running stack: secrets only in private files, the read-only role can
neither create temporary tables nor read MLflow's rows, every port bound to 127.0.0.1, MLflow's
health needs its backend store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import psycopg2
import pytest
from pydantic import SecretStr

from flightdelay.core.config import StackSettings
from flightdelay.stack import procs
from flightdelay.stack.clients import pg_connect
from flightdelay.stack.spec import MLFLOW_PROBE
from tests.stack.conftest import STACK_ENV

pytestmark = pytest.mark.stack
SECRETS = [
    v for k, v in STACK_ENV.items() if k.endswith(("PASSWORD", "SECRET_ACCESS_KEY", "TOKEN"))
]


def test_every_file_holding_a_secret_is_private(stack: StackSettings) -> None:
    root = Path(STACK_ENV["STACK_DIR"])
    assert (root / "supervisord.conf").stat().st_mode & 0o777 == 0o600
    open_files = []
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink() or "pg/data" in str(path):
            continue  # pg/data: Postgres's own, in a 0700 folder
        try:
            text = path.read_bytes()
        except OSError:
            continue
        if any(s.encode() in text for s in SECRETS) and path.stat().st_mode & 0o077:
            open_files.append(f"{path} {oct(path.stat().st_mode & 0o777)}")
    assert open_files == []
    assert (root / "pg" / "data").stat().st_mode & 0o077 == 0


def _reader(settings: StackSettings, db: str) -> object:
    password = settings.postgres_readonly_password.get_secret_value()
    return pg_connect(settings, db, settings.postgres_readonly_user, password)


def test_reader_cannot_create_temp_tables_nor_read_mlflow_rows(stack: StackSettings) -> None:
    for db in (stack.postgres_features_db, stack.postgres_mlflow_db, "postgres"):
        conn = _reader(stack, db)
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):  # type: ignore[attr-defined]
            cur.execute("CREATE TEMP TABLE t (i int)")
        conn.close()
    owner = pg_connect(stack, stack.postgres_features_db)
    with owner.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS reader_probe (i int)")
    conn = _reader(stack, stack.postgres_features_db)
    with conn.cursor() as cur:  # the features DB: readable, also tables made later
        cur.execute("SELECT count(*) FROM reader_probe")
    conn.close()
    with owner.cursor() as cur:
        cur.execute("DROP TABLE reader_probe")
    owner.close()
    conn = _reader(stack, stack.postgres_mlflow_db)
    with conn.cursor() as cur:  # connects (pgAdmin's entry works), sees the schema, no rows
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert cur.fetchone()[0] > 10
        for table in ("experiments", "secrets", "webhooks"):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):  # type: ignore[attr-defined]
                cur.execute(f"SELECT 1 FROM {table} LIMIT 1")
    conn.close()


def test_every_port_of_the_stack_is_bound_to_loopback(stack: StackSettings) -> None:
    mine = {p.pid for p in procs.stack_processes(Path(STACK_ENV["STACK_DIR"]))}
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    ours = [ln for ln in out.splitlines() if any(f"pid={pid}," in ln for pid in mine)]
    assert len(ours) >= 15, out
    wild = [ln for ln in ours if not ln.split()[3].startswith("127.0.0.1:")]
    assert wild == []


def _login(settings: StackSettings) -> tuple[str, str]:
    return settings.mlflow_tracking_username, settings.mlflow_tracking_password.get_secret_value()


def test_mlflow_health_needs_its_backend_store(stack: StackSettings) -> None:
    """The stack's health check of MLflow is a signed REST call that needs the backend store;
    MLflow's own /health stays open (it proves nothing about the store)."""
    url = f"http://127.0.0.1:{stack.mlflow_port}"
    r = httpx.get(f"{url}{MLFLOW_PROBE}", auth=_login(stack), timeout=5)
    assert r.status_code == 200 and "experiments" in r.json()
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200


@pytest.mark.parametrize("where", ["mlflow_port", "nginx_mlflow_port"])
def test_mlflow_checks_credentials_itself_for_rest_and_artifacts(
    stack: StackSettings, where: str
) -> None:
    """MLflow's basic-auth app: its own port refuses a local user without the password as
    nginx's port does (nginx passes the header through; MLflow checks it once)."""
    base = f"http://127.0.0.1:{getattr(stack, where)}"
    artifact = f"{base}/api/2.0/mlflow-artifacts/artifacts/auth-probe/{where}.txt"
    put = httpx.put(artifact, content=b"probe", auth=_login(stack), timeout=10)
    assert put.status_code == 200, put.text[:200]
    wrong = (stack.mlflow_tracking_username, "not-the-password")
    for url in (f"{base}{MLFLOW_PROBE}", artifact):
        assert httpx.get(url, timeout=10).status_code == 401, url
        assert httpx.get(url, auth=wrong, timeout=10).status_code == 401, url
        assert httpx.get(url, auth=_login(stack), timeout=10).status_code == 200, url
    assert httpx.get(artifact, auth=_login(stack), timeout=10).content == b"probe"
    assert httpx.put(artifact, content=b"x", timeout=10).status_code == 401


def test_reader_cannot_open_mlflows_auth_database(stack: StackSettings) -> None:
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):
        _reader(stack, stack.postgres_mlflow_auth_db)
    owner = pg_connect(stack, stack.postgres_mlflow_auth_db)  # MLflow's role: its users table
    with owner.cursor() as cur:
        cur.execute("SELECT is_admin FROM users WHERE username = %s", (_login(stack)[0],))
        assert cur.fetchone() == (True,)
    owner.close()


def test_a_changed_mlflow_password_is_taken_by_stack_up(stack: StackSettings) -> None:
    """MLflow ignores its configured admin password once the admin exists; the stack's set-up
    writes the one in .env (here as `stack up` runs it, then back)."""
    from flightdelay.stack.bootstrap import ensure_mlflow_admin

    url = f"http://127.0.0.1:{stack.mlflow_port}{MLFLOW_PROBE}"
    rotated = stack.model_copy(update={"mlflow_tracking_password": SecretStr("rotated-s3cr3t")})
    try:
        assert ensure_mlflow_admin(rotated) is True
        assert httpx.get(url, auth=_login(rotated), timeout=10).status_code == 200
        assert httpx.get(url, auth=_login(stack), timeout=10).status_code == 401
        assert ensure_mlflow_admin(rotated) is False  # already so: nothing written
    finally:
        ensure_mlflow_admin(stack)
    assert httpx.get(url, auth=_login(stack), timeout=10).status_code == 200


def test_seaweedfs_volume_and_filer_ports_refuse_requests_without_a_jwt(
    stack: StackSettings,
) -> None:
    """Only the S3 gateway (signatures) opens the store: the filer and volume HTTP ports, which
    `weed mini` needs internally, answer 401 to a local user without a token."""
    base = stack.seaweed_base_port
    put = httpx.put(f"http://127.0.0.1:{base + 4}/buckets/dvc/intruder.txt", content=b"x")
    assert put.status_code == 401, put.text[:200]
    listing = httpx.get(f"http://127.0.0.1:{base + 4}/buckets/mlflow/?limit=1")
    assert listing.status_code == 401, listing.text[:200]
    assert httpx.get(f"http://127.0.0.1:{base + 2}/1,01637037d6").status_code == 401
