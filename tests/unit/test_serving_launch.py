"""What `flightdelay serve` puts in the service's environment, and the token check."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightdelay.core.config import ServiceSettings
from flightdelay.serving.cli import MLFLOW_CLIENT_ENV, service_env
from flightdelay.serving.deps import AuthError, check_token

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PARAMS_PATH -> a copy of params.yaml whose register.model_name is `from-params`."""
    text = (ROOT / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("model_name: flightdelay", "model_name: from-params"))
    monkeypatch.setenv("PARAMS_PATH", str(path))
    return path


def test_model_name_comes_from_params_when_unset(params: Path) -> None:
    environ = {"PATH": "/bin"}
    env = service_env(environ, ServiceSettings(model_name=""))
    assert env["MODEL_NAME"] == "from-params" and env["PATH"] == "/bin"
    assert environ == {"PATH": "/bin"}  # the caller's mapping is left alone
    assert all(env[k] == v for k, v in MLFLOW_CLIENT_ENV.items())


def test_the_environment_wins(params: Path) -> None:
    environ = {"MODEL_NAME": "mine", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5"}
    env = service_env(environ, ServiceSettings(model_name="mine"))
    assert env["MODEL_NAME"] == "mine" and env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"
    # once everything is there, `serve` starts uvicorn instead of starting itself again
    assert service_env(env, ServiceSettings(model_name="mine")) == env


def test_credentials_only_for_a_tracking_server(params: Path) -> None:
    local = service_env({}, ServiceSettings(model_name="m", mlflow_tracking_uri="sqlite:///x.db"))
    assert "MLFLOW_TRACKING_USERNAME" not in local and "MLFLOW_TRACKING_PASSWORD" not in local
    server = ServiceSettings(
        model_name="m",
        mlflow_tracking_uri="http://127.0.0.1:5080",
        mlflow_tracking_username="u",
        mlflow_tracking_password="p",  # type: ignore[arg-type]
    )
    env = service_env({}, server)
    assert env["MLFLOW_TRACKING_USERNAME"] == "u" and env["MLFLOW_TRACKING_PASSWORD"] == "p"
    assert service_env({"MLFLOW_TRACKING_USERNAME": "v"}, server)["MLFLOW_TRACKING_USERNAME"] == "v"


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("", 401), ("Basic abc", 401), ("Bearer nope", 403), ("bearer tok ", None)],
)
def test_check_token(header: str | None, status: int | None) -> None:
    if status is None:
        check_token(header, "tok")
        return
    with pytest.raises(AuthError) as err:
        check_token(header, "tok")
    assert err.value.status == status
