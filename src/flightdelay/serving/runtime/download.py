"""Step 2 of a load: bring a registered version's artifacts to a local directory and read them.

The tracking and registry URIs are passed explicitly to MLflow (no global state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flightdelay.core.model_code import load_pipeline
from flightdelay.core.tracking import PIPELINE_FILE

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


@dataclass(frozen=True)
class ModelArtifacts:
    """What the artifacts hold: the fitted pipeline, its MLflow signature (None when it was
    logged without one), its input example (None when absent) and the pyfunc `model_config`
    (model_name, categorical, numeric, target, positive, decision_threshold; {} when absent)."""

    pipeline: Any
    signature: Any  # mlflow.models.ModelSignature | None
    example: Any  # pandas.DataFrame | None
    config: dict[str, Any] = field(default_factory=dict)


def download(client: MlflowClient, name: str, version: int, dst: Path, uri: str) -> Path:
    """Download version `version` of model `name` into `dst`; returns the local model directory.

    The registry names the version's storage location (not `models:/...`: MLflow resolves
    those through its global registry URI, whatever URI it is given), and the artifacts come
    from there through the tracking server at `uri` when it serves them."""
    import mlflow.artifacts

    source = client.get_model_version_download_uri(name, str(version))
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=str(dst), tracking_uri=uri, registry_uri=uri
    )
    return Path(local)


def read_pipeline(local: Path) -> Any:
    """The fitted sklearn pipeline of a model directory: the skops file of the project's pyfunc
    model (loaded with its reviewed allow-list), else an sklearn-flavour model (older versions).
    """
    skops_file = local / "artifacts" / PIPELINE_FILE
    if skops_file.is_file():
        return load_pipeline(str(skops_file))
    import mlflow.sklearn

    return mlflow.sklearn.load_model(str(local))


def read_artifacts(local: Path) -> ModelArtifacts:
    """Load the sklearn pipeline, the signature and the input example from a model directory."""
    from mlflow.models import Model

    pipeline = read_pipeline(local)
    meta = Model.load(str(local))
    example = meta.load_input_example(str(local))
    config = (meta.flavors.get("python_function") or {}).get("config") or {}
    return ModelArtifacts(pipeline, meta.signature, example, dict(config))
