"""The native stack for real: Postgres, SeaweedFS, nginx, MLflow server, pgAdmin, two API replicas.

Tests run in file order; the last one stops the stack and starts it again.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError
from sqlalchemy import create_engine, text

from flightdelay.core.config import StackSettings
from flightdelay.stack import manager
from flightdelay.stack.bootstrap import configure_dvc_remote
from flightdelay.stack.clients import pg_url, s3_client
from tests.conftest import ROOT, venv_env
from tests.stack.conftest import STACK_ENV, flightdelay, stack_client_env, stack_processes

pytestmark = pytest.mark.stack
SHOTS = ROOT / "reports" / "screenshots"


def mlflow_api(settings: StackSettings, path: str, **params: object) -> dict:  # type: ignore[type-arg]
    auth = (settings.mlflow_tracking_username, settings.mlflow_tracking_password.get_secret_value())
    r = httpx.get(
        f"http://127.0.0.1:{settings.nginx_mlflow_port}/api/2.0/mlflow/{path}",
        params=params,  # type: ignore[arg-type]
        auth=auth,
        timeout=10,
    )
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def test_stack_up_from_nothing_all_healthy(stack: StackSettings) -> None:
    out = flightdelay("stack", "status").stdout
    names = {line.split()[0] for line in out.splitlines()}
    assert names == {
        "postgres", "s3", "mlflow", "pgadmin", "api1", "api2", "prometheus", "nginx", "watchdog"
    }  # fmt: skip
    assert all(" RUNNING" in line for line in out.splitlines())
    again = flightdelay("stack", "up").stdout  # idempotent: nothing restarts
    assert again.count("healthy") == 9


def test_processes_hold_no_secret_and_the_api_reaches_mlflow_through_nginx(
    stack: StackSettings,
) -> None:
    """No password on any command line (`ps` shows them to every local user); the API replicas
    get MODEL_NAME from the spec and talk to MLflow through nginx with basic auth; htpasswd is
    SHA-512 crypt, the scheme the compose nginx writes too."""
    secrets = [
        v for k, v in STACK_ENV.items() if k.endswith(("PASSWORD", "SECRET_ACCESS_KEY", "TOKEN"))
    ]
    lines = stack_processes()
    assert any("mlflow server" in ln for ln in lines), lines
    assert any("postgres -D" in ln for ln in lines), lines
    for line in lines:
        assert not any(secret in line for secret in secrets), line
    pid = manager.service_pids(stack)["api1"]
    environ = dict(
        kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_text().split("\0") if kv
    )
    assert environ["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{stack.nginx_mlflow_port}"
    assert environ["MODEL_NAME"] == "flightdelay"
    htpasswd = (Path(STACK_ENV["STACK_DIR"]) / "nginx/htpasswd").read_text()
    assert htpasswd.startswith(f"{stack.mlflow_tracking_username}:$6$")


def test_api_waits_for_a_model(stack: StackSettings) -> None:
    """Before the first repro the replicas are up but not ready; they load the champion by
    themselves once it exists (test_predict_through_nginx_... waits for exactly that)."""
    for port in (18001, 18002):
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
    r = httpx.get(f"http://127.0.0.1:{stack.nginx_http_port}/ready")
    assert r.status_code == 503 and r.json()["ready"] is False, r.text


def test_repro_writes_to_the_stack(stack: StackSettings, stack_repo: Path) -> None:
    exp = mlflow_api(stack, "experiments/get-by-name", experiment_name="flightdelay")["experiment"]
    assert exp["artifact_location"].startswith("mlflow-artifacts:")
    runs = httpx.post(
        f"http://127.0.0.1:{stack.nginx_mlflow_port}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [exp["experiment_id"]]},
        auth=(stack.mlflow_tracking_username, stack.mlflow_tracking_password.get_secret_value()),
    ).json()["runs"]
    assert sorted(r["info"]["run_name"] for r in runs) == ["lasso", "ridge"]
    versions = mlflow_api(stack, "model-versions/search", filter="name='flightdelay'")[
        "model_versions"
    ]
    assert len(versions) == 2
    model = mlflow_api(stack, "registered-models/get", name="flightdelay")["registered_model"]
    assert {a["alias"] for a in model["aliases"]} == {"champion", "challenger", "serving"}
    keys = [
        o["Key"]
        for o in s3_client(stack).list_objects_v2(Bucket=stack.s3_bucket_mlflow)["Contents"]
    ]  # type: ignore[attr-defined]
    assert any(k.endswith("MLmodel") for k in keys) and any(k.endswith(".png") for k in keys)
    engine = create_engine(pg_url(stack, stack.postgres_features_db))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM flight_features")).scalar_one() == 336_776
    engine.dispose()


def _wait_ready(url: str, version: int | None = None, timeout: float = 60) -> dict:  # type: ignore[type-arg]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = httpx.get(f"{url}/ready", timeout=5)
        if r.status_code == 200 and (version is None or r.json()["model"]["version"] == version):
            return r.json()  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError(f"{url} not ready: {r.text}")


def test_predict_through_nginx_both_replicas_and_failover(
    stack: StackSettings, stack_repo: Path
) -> None:
    champion = json.loads((stack_repo / "reports/registry.json").read_text())["champion"]
    for port in (18001, 18002):
        _wait_ready(f"http://127.0.0.1:{port}", champion)
    from flightdelay.serving.client import records_from_split

    record = records_from_split(stack_repo / "data/processed/test.parquet", 1)[0]
    url = f"http://127.0.0.1:{stack.nginx_http_port}/predict"
    served_by, versions = set(), set()
    for _ in range(10):
        r = httpx.post(url, json=record, timeout=10)
        assert r.status_code == 200, r.text
        served_by.add(r.headers["x-served-by"])
        versions.add(r.json()["model"]["version"])
    assert served_by == {"api1", "api2"} and versions == {champion}
    tls = httpx.post(
        f"https://127.0.0.1:{stack.nginx_https_port}/predict", json=record, verify=False
    )
    assert tls.status_code == 200
    ctl = [
        str(ROOT / ".venv/bin/supervisorctl"),
        "-c",
        f"{STACK_ENV['STACK_DIR']}/supervisord.conf",
    ]
    subprocess.run([*ctl, "stop", "api1"], check=True, capture_output=True)
    try:
        for _ in range(6):
            r = httpx.post(url, json=record, timeout=10)
            assert r.status_code == 200 and r.headers["x-served-by"] == "api2"
    finally:
        subprocess.run([*ctl, "start", "api1"], check=True, capture_output=True)


def test_pgadmin_login_and_connect_without_password(stack: StackSettings) -> None:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.nginx_pgadmin_port}", follow_redirects=True, timeout=30
    ) as c:
        token = re.search(r'csrfToken["\']?\s*[:=]\s*["\']([^"\']+)', c.get("/login").text).group(1)  # type: ignore[union-attr]
        headers = {"X-pgA-CSRFToken": token}
        r = c.post(
            "/authenticate/login",
            headers=headers,
            data={
                "csrf_token": token,
                "email": stack.pgadmin_email,
                "password": stack.pgadmin_password.get_secret_value(),
            },
        )
        assert r.status_code == 200 and r.url.path.startswith("/browser")
        groups = c.get("/browser/server_group/nodes/", headers=headers).json()["data"]
        gid = next(g["_id"] for g in groups if g["label"] == "flightdelay")
        servers = c.get(f"/browser/server/obj/{gid}/", headers=headers).json()
        features = next(s for s in servers if s["db"] == stack.postgres_features_db)
        r = c.post(f"/browser/server/connect/{gid}/{features['id']}", headers=headers, json={})
        assert r.json()["info"] == "Server connected.", r.text[:300]


def test_mlflow_ui_shows_runs_and_champion(stack: StackSettings, stack_repo: Path) -> None:
    """The UI as a user opens it: through nginx, with the basic-auth credentials."""
    import base64

    from tests.stack.browser import render

    exp = mlflow_api(stack, "experiments/get-by-name", experiment_name="flightdelay")["experiment"]
    base = f"http://127.0.0.1:{stack.nginx_mlflow_port}"
    password = stack.mlflow_tracking_password.get_secret_value()
    token = base64.b64encode(f"{stack.mlflow_tracking_username}:{password}".encode()).decode()
    auth = {"Authorization": f"Basic {token}"}
    text, dom = render(
        f"{base}/#/experiments/{exp['experiment_id']}/runs",
        auth,
        ["lasso", "ridge"],
        SHOTS / "mlflow-experiment.png",
    )
    assert "lasso" in text and "ridge" in text, text[:500]
    assert "flightdelay" in dom
    text, _ = render(
        f"{base}/#/models/flightdelay", auth, ["champion", "challenger"], SHOTS / "mlflow-model.png"
    )
    assert "champion" in text and "challenger" in text, text[:500]
    assert (SHOTS / "mlflow-model.png").stat().st_size > 10_000


def test_wrong_s3_secret_is_403(stack: StackSettings) -> None:
    with pytest.raises(ClientError) as err:
        s3_client(stack, secret="not-the-secret").list_buckets()  # type: ignore[attr-defined]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_mlflow_without_basic_auth_is_401(stack: StackSettings) -> None:
    r = httpx.get(f"http://127.0.0.1:{stack.nginx_mlflow_port}/api/2.0/mlflow/experiments/search")
    assert r.status_code == 401


def test_doctor_passes(stack: StackSettings, stack_repo: Path) -> None:
    out = flightdelay("stack", "doctor", cwd=stack_repo_with_remote(stack, stack_repo)).stdout
    assert out.count("ok  ") == 16, out


def stack_repo_with_remote(stack: StackSettings, repo: Path) -> Path:
    import os

    cwd = Path.cwd()
    try:
        os.chdir(repo)
        configure_dvc_remote(stack)
    finally:
        os.chdir(cwd)
    return repo


def test_dvc_push_then_pull_in_a_second_clone(
    stack: StackSettings, stack_repo: Path, tmp_path: Path
) -> None:
    """A second clone on the stack gets everything back with `dvc pull`, and `dvc repro` there
    re-runs nothing but the target check and registers nothing."""
    repo = stack_repo_with_remote(stack, stack_repo)
    env = venv_env({"DVC_SITE_CACHE_DIR": str(tmp_path / "site")})
    for cmd in (
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lock"],
        ["dvc", "push"],
    ):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    clone = tmp_path / "second"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    stack_repo_with_remote(stack, clone)
    proc = subprocess.run(["dvc", "pull"], cwd=clone, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for rel in (
        "data/raw/flights.parquet",
        "data/processed/train.parquet",
        "data/processed/test.parquet",
        "models/runs/ridge.json",
        "models/registered.json",
    ):
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes()
    versions = mlflow_api(stack, "registered-models/get", name="flightdelay")
    before = len(
        mlflow_api(stack, "model-versions/search", filter="name='flightdelay'").get(
            "model_versions", []
        )
    )
    stack_env = env | stack_client_env(stack)
    repro = subprocess.run(
        ["dvc", "repro"], cwd=clone, env=stack_env, capture_output=True, text=True
    )
    assert repro.returncode == 0, repro.stdout[-2000:] + repro.stderr[-2000:]
    ran = [line for line in repro.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'target':"], repro.stdout
    after = mlflow_api(stack, "model-versions/search", filter="name='flightdelay'")
    assert len(after.get("model_versions", [])) == before and versions
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True
    )
    assert status.stdout == ""


def test_down_leaves_nothing_and_up_keeps_the_data(stack: StackSettings, stack_repo: Path) -> None:
    flightdelay("stack", "down")
    time.sleep(1)
    assert stack_processes() == []
    assert flightdelay("stack", "status", check=False).returncode == 3
    flightdelay("stack", "up")
    engine = create_engine(pg_url(stack, stack.postgres_features_db))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM flight_features")).scalar_one() == 336_776
    engine.dispose()
    model = mlflow_api(stack, "registered-models/get", name="flightdelay")["registered_model"]
    assert {a["alias"] for a in model["aliases"]} == {"champion", "challenger", "serving"}
    assert s3_client(stack).list_objects_v2(Bucket=stack.s3_bucket_mlflow)["KeyCount"] > 0  # type: ignore[attr-defined]
    _ = stack_client_env
