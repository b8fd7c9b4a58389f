"""Step 2 of a load: bring a registered version's artifacts to a local directory and read them.

The tracking and registry URIs are passed explicitly to MLflow (no global state).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelArtifacts:
    """What the artifacts hold: the fitted pipeline, its MLflow signature (None when it was
    logged without one) and its input example (None when absent)."""

    pipeline: Any
    signature: Any  # mlflow.models.ModelSignature | None
    example: Any  # pandas.DataFrame | None


def download(name: str, version: int, dst: Path, uri: str) -> Path:
    """Download `models:/<name>/<version>` from the registry at `uri` into `dst`; returns the
    local model directory."""
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version}",
        dst_path=str(dst),
        tracking_uri=uri,
        registry_uri=uri,
    )
    return Path(local)


def read_artifacts(local: Path) -> ModelArtifacts:
    """Load the sklearn pipeline, the signature and the input example from a model directory."""
    import mlflow.sklearn
    from mlflow.models import Model

    pipeline = mlflow.sklearn.load_model(str(local))
    meta = Model.load(str(local))
    example = meta.load_input_example(str(local))
    return ModelArtifacts(pipeline, meta.signature, example)
