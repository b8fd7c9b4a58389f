"""The native stack, started for real once per test session on its own ports and state folder."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flightdelay.core.config import StackSettings
from tests.conftest import ROOT, copy_repo, venv_env

# Ports away from the defaults, so a developer's own stack can keep running, and below Linux's
# ephemeral range (32768-60999): a client socket the kernel gave such a port would block it.
STACK_ENV = {
    "STACK_DIR": str(ROOT / ".stack-test"),
    "STACK_TOOLS_DIR": str(ROOT / ".stack" / "tools"),
    "POSTGRES_PASSWORD": "pg-test-secret",
    "POSTGRES_READONLY_PASSWORD": "reader-test-secret",
    "AWS_SECRET_ACCESS_KEY": "s3-test-secret",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-test-secret",
    "PGADMIN_PASSWORD": "pgadmin-test-secret",
    "API_TOKEN": "api-test-token",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-test-secret",
    "POSTGRES_PORT": "26432",
    "S3_PORT": "26333",
    "SEAWEED_BASE_PORT": "26900",
    "MLFLOW_PORT": "26000",
    "PGADMIN_PORT": "26050",
    "PROMETHEUS_PORT": "26090",
    "API_REPLICA_PORTS": "18001,18002",
    "API_POLL_SECONDS": "2",
    "NGINX_HTTP_PORT": "18080",
    "NGINX_HTTPS_PORT": "18443",
    "NGINX_MLFLOW_PORT": "15080",
    "NGINX_PGADMIN_PORT": "15050",
    "NGINX_S3_PORT": "19000",
}


# Stack commands run in a folder of their own holding only params.yaml: outside any DVC repo (a
# developer's .dvc/config.local stays untouched) and away from a developer's .env.
WORKDIR = Path(tempfile.gettempdir()) / "flightdelay-stack-test-cwd"


def workdir() -> Path:
    """The folder stack commands (and so the API replicas) run in."""
    WORKDIR.mkdir(exist_ok=True)
    (WORKDIR / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    return WORKDIR


def stack_settings() -> StackSettings:
    return StackSettings(**{k.lower(): v for k, v in STACK_ENV.items()})  # type: ignore[arg-type]


def _with_newer_settings(env: dict[str, str]) -> dict[str, str]:
    """Another suite's stack table (tests/faults) written before a setting existed: a test secret
    for a newer secret, and newer internal ports next to its MLflow port (not the defaults,
    which a developer's own stack holds)."""
    out = {"MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-other-suite-secret"} | env
    if "MLFLOW_PORT" in env:
        out.setdefault("PROMETHEUS_PORT", str(int(env["MLFLOW_PORT"]) + 90))
    return out


def flightdelay(
    *args: str,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 900,
    stack_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`flightdelay *args` with the test stack's settings (or `stack_env`'s) on top of the venv's
    environment, without the caller's DATABASE_URL / MLflow variables."""
    env = venv_env()
    for var in (
        "DATABASE_URL",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    ):
        env.pop(var, None)
    env.update(STACK_ENV if stack_env is None else stack_env)
    if stack_env is not None and "STACK_DIR" in stack_env:
        env = _with_newer_settings(env)
    proc = subprocess.run(
        ["flightdelay", *args],
        cwd=cwd or workdir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, (
            f"flightdelay {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def stack_processes() -> list[str]:
    """Command lines of processes that belong to the test stack."""
    # ww: full command lines (else ps cuts them at COLUMNS, which pytest sets)
    out = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    marks = (STACK_ENV["STACK_DIR"], ":18001", "18001", "26432", "26333", "26000", "26050", "26090")
    return [
        line
        for line in out.splitlines()
        if any(m in line for m in marks) and "pytest" not in line and not line.startswith("ps ")
    ]


@pytest.fixture(scope="session")
def stack() -> Iterator[StackSettings]:
    """`flightdelay stack up` from nothing (state wiped first); `stack down` at the end."""
    state = Path(STACK_ENV["STACK_DIR"])
    flightdelay("stack", "down", check=False)
    subprocess.run(["rm", "-rf", str(state)], check=True)
    t0 = time.monotonic()
    out = flightdelay("stack", "up").stdout
    os.environ.setdefault("FD_TEST_STACK_UP_S", f"{time.monotonic() - t0:.1f}")
    assert "stack is up" in out
    try:
        yield stack_settings()
    finally:
        flightdelay("stack", "down", check=False)


def stack_client_env(settings: StackSettings) -> dict[str, str]:
    from flightdelay.stack.spec import client_env

    return client_env(settings)


@pytest.fixture(scope="session")
def stack_repo(stack: StackSettings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh repo copy after `dvc repro` with the stack's settings (Postgres + MLflow server)."""
    repo = copy_repo(tmp_path_factory.mktemp("stack-clone"))
    env = venv_env(stack_client_env(stack) | {"DVC_SITE_CACHE_DIR": str(repo / ".dvc-site")})
    proc = subprocess.run(
        ["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return repo
