"""The fault suite's own native stack: other ports and another STACK_DIR than tests/stack, so the
faults (SIGKILL of supervisord, SIGSTOP of a replica, ...) never disturb that suite's stack, and
both can run at once. A tiny model is registered through the stack's MLflow so the replicas
answer /predict; loads are bounded and on loopback only."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flightdelay.core.config import ServiceSettings, StackSettings
from tests.conftest import ROOT
from tests.stack.conftest import flightdelay

FAULT_ENV = {
    "STACK_DIR": str(ROOT / ".stack-faults"),
    "STACK_TOOLS_DIR": str(ROOT / ".stack" / "tools"),
    "POSTGRES_PASSWORD": "pg-fault-secret",
    "POSTGRES_READONLY_PASSWORD": "reader-fault-secret",
    "AWS_SECRET_ACCESS_KEY": "s3-fault-secret",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-fault-secret",
    "PGADMIN_PASSWORD": "pgadmin-fault-secret",
    "API_TOKEN": "api-fault-token",
    "MODEL_NAME": "tiny",
    "MODEL_ALIAS": "champion",
    "API_POLL_SECONDS": "2",
    "POSTGRES_PORT": "27432",
    "S3_PORT": "27333",
    "SEAWEED_BASE_PORT": "27900",
    "MLFLOW_PORT": "27000",
    "PGADMIN_PORT": "27050",
    "API_REPLICA_PORTS": "28001,28002",
    "NGINX_HTTP_PORT": "28080",
    "NGINX_HTTPS_PORT": "28443",
    "NGINX_MLFLOW_PORT": "25080",
    "NGINX_PGADMIN_PORT": "25050",
    "NGINX_S3_PORT": "29000",
}
WORKDIR = Path(tempfile.gettempdir()) / "flightdelay-faults-cwd"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: injected faults on a native stack of their own")


def fd(*args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
    """`flightdelay *args` on the fault stack (`extra`: settings changed for this call)."""
    WORKDIR.mkdir(exist_ok=True)
    (WORKDIR / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    return flightdelay(*args, cwd=WORKDIR, check=check, stack_env=FAULT_ENV | extra, timeout=300)


def fault_settings() -> StackSettings:
    return StackSettings(_env_file=None, **{k.lower(): v for k, v in FAULT_ENV.items()})  # type: ignore[call-arg, arg-type]


def wait_ready(port: int, timeout: float = 60) -> None:
    """Until the replica on `port` has a model loaded."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"replica on {port} not ready within {timeout:.0f} s")


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[StackSettings]:
    """The fault stack from nothing, with a tiny champion every replica serves."""
    from tests.helpers.serving import register_tiny

    fd("stack", "down", check=False)
    subprocess.run(["rm", "-rf", FAULT_ENV["STACK_DIR"]], check=True)
    fd("stack", "up")
    try:  # a failed set-up must not leave the stack running either
        settings = fault_settings()
        tracking = ServiceSettings(
            _env_file=None,  # type: ignore[call-arg]
            mlflow_tracking_uri=f"http://127.0.0.1:{settings.nginx_mlflow_port}",
            mlflow_tracking_username=settings.mlflow_tracking_username,
            mlflow_tracking_password=settings.mlflow_tracking_password,
            model_name="tiny",
        )
        # MLflow takes a server's credentials from the environment only (as the CLI passes them)
        secret = settings.mlflow_tracking_password.get_secret_value()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("MLFLOW_TRACKING_USERNAME", settings.mlflow_tracking_username)
            env.setenv("MLFLOW_TRACKING_PASSWORD", secret)
            register_tiny(tracking)
        for port in (28001, 28002):
            wait_ready(port)
        yield settings
    finally:
        fd("stack", "down", check=False)
