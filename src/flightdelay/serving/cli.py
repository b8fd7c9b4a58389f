"""CLI commands of the service: `serve`, `predict` and `demo` (mounted by flightdelay.cli)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from flightdelay.core.errors import UserError

if TYPE_CHECKING:
    from flightdelay.core.config import ServiceSettings

# MLflow client knobs the service runs with, unless its environment says otherwise. The holder
# retries with its own bounded backoff, so MLflow should fail fast instead of retrying for
# minutes; no progress bars in the service's log. MLflow reads them from the process environment.
MLFLOW_CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def service_env(environ: Mapping[str, str], settings: ServiceSettings) -> dict[str, str]:
    """The environment the service process starts with: `environ` plus, where it lacks them,
    MODEL_NAME from params.yaml `register.model_name`, :data:`MLFLOW_CLIENT_ENV`, and for an
    http(s) tracking server the MLFLOW_TRACKING_USERNAME/PASSWORD of the settings (.env)."""
    env = {**MLFLOW_CLIENT_ENV, **environ}
    if not settings.model_name:
        from flightdelay.core.config import get_pipeline_settings, load_params

        name = load_params(get_pipeline_settings().params_path).registry.model_name
        if not name:
            raise UserError("params.yaml register.model_name is empty: nothing to serve")
        env["MODEL_NAME"] = name
    if settings.mlflow_tracking_uri.startswith(("http://", "https://")):
        env.setdefault("MLFLOW_TRACKING_USERNAME", settings.mlflow_tracking_username)
        password = settings.mlflow_tracking_password.get_secret_value()
        env.setdefault("MLFLOW_TRACKING_PASSWORD", password)
    return env


def register(app: typer.Typer, user_errors: Callable[[Any], Any]) -> None:
    """Add `serve`, `predict` and `demo` to the main CLI; imports stay inside each command."""
    for name, command in (("serve", serve), ("predict", predict), ("demo", demo)):
        app.command(name)(user_errors(command))


def serve(
    host: str | None = typer.Option(None, help="Default: API_HOST."),
    port: int | None = typer.Option(None, help="Default: API_PORT."),
    workers: int | None = typer.Option(None, help="Default: API_WORKERS."),
) -> None:
    """Serve models:/<MODEL_NAME>@<MODEL_ALIAS> with uvicorn (access log off)."""
    import uvicorn

    from flightdelay.core.config import get_service_settings
    from flightdelay.serving.protocol import IMPORT_PATH

    s = get_service_settings()
    env = service_env(os.environ, s)
    if env != dict(os.environ):
        # Start again with what the service needs in its own environment (MODEL_NAME from
        # params.yaml, MLflow's client knobs, credentials): the service reads nothing else.
        argv = [sys.executable, "-m", "flightdelay.cli", "serve"]
        for flag, value in (("--host", host), ("--port", port), ("--workers", workers)):
            if value is not None:
                argv += [flag, str(value)]
        os.execve(sys.executable, argv, env)
    uvicorn.run(
        "flightdelay.serving.app:create_app",
        factory=True,
        host=host or s.api_host,
        port=port or s.api_port,
        workers=workers or s.api_workers,
        http=IMPORT_PATH,  # head size limit, head and body deadlines (serving/protocol.py)
        access_log=False,
        log_level="info",
    )


def predict(
    host: str = typer.Option("http://127.0.0.1:8000", help="Base URL of the service."),
    record: str | None = typer.Option(None, help="One record as JSON."),
    file: Path | None = typer.Option(None, help="JSON file: a record, a list, or columns."),
) -> None:
    """POST records to /predict and print the answer."""
    from flightdelay.serving.client import post_predict

    if (record is None) == (file is None):
        raise UserError("give exactly one of --record or --file")
    try:
        body = json.loads(record) if record is not None else json.loads(Path(file).read_text())  # type: ignore[arg-type]
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read the records: {exc}") from None
    status, answer = post_predict(host, body)
    print(json.dumps(answer, indent=2))
    if status >= 400:
        sys.exit(1)


def demo(
    host: str = typer.Option("http://127.0.0.1:8000", help="Base URL of the service."),
    test_split: Path = typer.Option(Path("data/processed/test.parquet")),
    out: Path = typer.Option(Path("reports/requests.jsonl")),
    batch: int = typer.Option(100, help="Records in the batch request."),
) -> None:
    """Call every endpoint with realistic records; write request/response pairs to `out`."""
    from flightdelay.core.config import get_service_settings
    from flightdelay.serving.client import run_demo

    n = run_demo(host, test_split, out, batch, get_service_settings().api_token.get_secret_value())
    print(f"{n} request/response pairs written to {out}")
