"""MLflow plumbing shared by training, the registry stage, the service and the tests."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from flightdelay.core.config import TrackingSettings
from flightdelay.core.errors import UserError

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"


def configure_tracking(settings: TrackingSettings) -> None:
    """Point MLflow at MLFLOW_TRACKING_URI (and the same registry)."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    export_credentials(settings)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)


def export_credentials(settings: TrackingSettings) -> None:
    """For a tracking server, hand MLflow the basic-auth credentials from settings/.env
    (MLflow itself reads only the process environment, not .env)."""
    if settings.mlflow_tracking_uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", settings.mlflow_tracking_username)
        os.environ.setdefault(
            "MLFLOW_TRACKING_PASSWORD", settings.mlflow_tracking_password.get_secret_value()
        )


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "/", ".")) or "://" not in uri


def ensure_experiment(name: str, settings: TrackingSettings) -> str:
    """The id of experiment `name`, created if missing.

    On a local store the artifact root is MLFLOW_ARTIFACT_ROOT made absolute, so the models can
    be loaded from any working directory; a tracking server decides its own root.
    """
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    location = None
    if _is_local_store(settings.mlflow_tracking_uri):
        location = Path(settings.mlflow_artifact_root).resolve().as_uri()
    return str(mlflow.create_experiment(name, artifact_location=location))


def log_pipeline_run(
    pipeline: Any,
    x_example: pd.DataFrame,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    experiment_id: str,
    run_name: str | None = None,
    artifacts_dir: Path | None = None,
) -> str:
    """Log one fitted pipeline as a run: params, metrics, tags, files in `artifacts_dir`
    (under `plots/`) and the model with its signature and input example. Returns the run id."""
    import mlflow
    from mlflow.models import infer_signature

    example = x_example.head(5)
    signature = infer_signature(example, pipeline.predict_proba(example)[:, 1])
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.log_params({k: _param_value(v) for k, v in params.items()})
        mlflow.log_metrics(dict(metrics))
        mlflow.set_tags(dict(tags))
        if artifacts_dir is not None and artifacts_dir.is_dir():
            mlflow.log_artifacts(str(artifacts_dir), artifact_path="plots")
        mlflow.sklearn.log_model(
            pipeline,
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=example,
            serialization_format="cloudpickle",
            pyfunc_predict_fn="predict_proba",
            # Explicit requirements: inferring them re-imports the model in a subprocess (~10 s).
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True),
        )
        return str(run.info.run_id)


def _param_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def register_run(run_id: str, model_name: str, tags: Mapping[str, str] | None = None) -> int:
    """Register the run's model under `model_name`; returns the new version number."""
    import mlflow

    outputs = mlflow.get_run(run_id).outputs
    model_ids = [o.model_id for o in (outputs.model_outputs if outputs else [])]
    uri = f"models:/{model_ids[0]}" if model_ids else f"runs:/{run_id}/{MODEL_ARTIFACT}"
    mv = mlflow.register_model(uri, model_name, tags=dict(tags or {}))
    return int(mv.version)


def git_sha() -> str:
    """The current git commit (with `-dirty` when the tree has changes), or `unknown`."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def file_md5(path: Path) -> str:
    """The md5 of a file, as DVC records it for a file output in dvc.lock."""
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_client(settings: TrackingSettings) -> Any:
    """An MlflowClient on the configured store; a UserError when it cannot be reached."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    configure_tracking(settings)
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    try:
        client.search_experiments(max_results=1)
    except MlflowException as exc:
        raise UserError(
            f"MLflow at {settings.mlflow_tracking_uri} is not reachable: {exc}"
        ) from None
    return client
