"""Stage target: record where the data lives, so DVC re-runs what writes there when it moves.

The files hold masked URLs only (no secrets) and are rewritten on every `dvc repro`
(`always_changed`); DVC compares their hashes, so an unchanged target re-runs nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

from flightdelay.core.config import PipelineSettings, get_pipeline_settings, mask_url


def describe(settings: PipelineSettings) -> tuple[dict[str, str], dict[str, str]]:
    """The database and MLflow targets, with any password masked."""
    database = {"database_url": mask_url(settings.database_url)}
    mlflow = {"mlflow_tracking_uri": mask_url(settings.mlflow_tracking_uri)}
    return database, mlflow


def write_json(path: Path, payload: dict[str, str]) -> None:
    """Write `payload` as sorted, indented JSON (byte-stable) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def main(database_out: str, mlflow_out: str) -> None:
    """Write the two target files."""
    database, mlflow = describe(get_pipeline_settings())
    write_json(Path(database_out), database)
    write_json(Path(mlflow_out), mlflow)
