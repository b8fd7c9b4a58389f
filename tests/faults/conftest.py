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
from tests.conftest import ROOT, venv_env
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


def register_tiny_version(settings: StackSettings, c: float, alias: str | None) -> int:
    """Fit, log and register a tiny model version through the fault stack's MLflow (with the
    server's credentials in the environment, where MLflow reads them); returns its version."""
    from tests.helpers.serving import register_tiny

    tracking = ServiceSettings(
        _env_file=None,  # type: ignore[call-arg]
        mlflow_tracking_uri=f"http://127.0.0.1:{settings.nginx_mlflow_port}",
        mlflow_tracking_username=settings.mlflow_tracking_username,
        mlflow_tracking_password=settings.mlflow_tracking_password,
        model_name="tiny",
    )
    secret = settings.mlflow_tracking_password.get_secret_value()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_USERNAME", settings.mlflow_tracking_username)
        env.setenv("MLFLOW_TRACKING_PASSWORD", secret)
        return register_tiny(tracking, c=c, alias=alias)[0]


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[StackSettings]:
    """The fault stack from nothing, with a tiny champion every replica serves."""
    fd("stack", "down", check=False)
    subprocess.run(["rm", "-rf", FAULT_ENV["STACK_DIR"]], check=True)
    fd("stack", "up")
    try:  # a failed set-up must not leave the stack running either
        settings = fault_settings()
        register_tiny_version(settings, 1.0, "champion")
        for port in (28001, 28002):
            wait_ready(port)
        yield settings
    finally:
        fd("stack", "down", check=False)


PROJECT = Path(tempfile.gettempdir()) / "flightdelay-faults-project"


def stage_env(settings: StackSettings) -> dict[str, str]:
    """The fault stack's settings plus what points the pipeline at it (`stack env`)."""
    from flightdelay.stack.spec import client_env

    return FAULT_ENV | client_env(settings)


def stage(
    settings: StackSettings, *args: str, check: bool = True
) -> tuple[subprocess.CompletedProcess[str], float]:
    """`flightdelay *args` in the fault project, pointed at the fault stack -> (result, seconds)."""
    t0 = time.monotonic()
    proc = flightdelay(*args, cwd=PROJECT, check=check, stack_env=stage_env(settings), timeout=300)
    return proc, time.monotonic() - t0


def start(settings: StackSettings, *args: str) -> subprocess.Popen[str]:
    """`flightdelay *args` in the fault project, in the background (to be killed)."""
    return subprocess.Popen(
        ["flightdelay", *args],
        cwd=PROJECT,
        env=venv_env(stage_env(settings)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


@pytest.fixture(scope="session")
def project(fault_stack: StackSettings) -> Path:
    """A project folder for the pipeline's commands: params.yaml registering into the model the
    fleet serves (`tiny`), one variant on a 3,000-row sample, a small test split, and the raw
    tables."""
    import yaml

    subprocess.run(["rm", "-rf", str(PROJECT)], check=True)
    PROJECT.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["register"]["model_name"] = "tiny"
    params["mlflow"]["experiment"] = "faults"
    params["train"]["sample_rows"] = 3000
    params["train"]["variants"] = {"ridge": params["train"]["variants"]["ridge"]}
    # a small test split (one day of each month, ~11k rows): fast to evaluate and re-score
    day = {"strategy": "column", "column": "day", "train": list(range(1, 11)), "test": [28]}
    params["features"]["split"] = day
    (PROJECT / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stage(fault_stack, "get-data", "--out-dir", "raw")
    return PROJECT
