"""The load steps against a real temporary MLflow store: explicit URIs, no global state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flightdelay.core.config import ServiceSettings
from flightdelay.serving.runtime import ModelUnavailable
from flightdelay.serving.runtime.download import download, read_artifacts
from flightdelay.serving.runtime.load import load_served_model
from flightdelay.serving.runtime.resolve import registry_client, resolve
from tests.helpers.serving import MODEL, register_tiny, settings_for


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    s = settings_for(tmp_path)
    register_tiny(s)
    register_tiny(s, c=0.01, alias="challenger")
    return s


def test_resolve_alias_and_version(settings: ServiceSettings) -> None:
    uri = settings.mlflow_tracking_uri
    client = registry_client(uri)
    assert resolve(client, MODEL, "challenger", None, uri).version in ("2", 2)
    assert resolve(client, MODEL, None, 1, uri).version in ("1", 1)
    with pytest.raises(ModelUnavailable, match="alias 'nope' not found") as err:
        resolve(client, MODEL, "nope", None, uri)
    assert err.value.status == 404


def test_download_then_read(settings: ServiceSettings, tmp_path: Path) -> None:
    uri = settings.mlflow_tracking_uri
    local = download(registry_client(uri), MODEL, 1, tmp_path / "dl", uri)
    assert (local / "MLmodel").is_file()
    artifacts = read_artifacts(local)
    assert artifacts.signature is not None and len(artifacts.example) == 5
    assert hasattr(artifacts.pipeline, "predict_proba")


def test_load_uses_the_settings_store_only(
    settings: ServiceSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's global URIs point elsewhere: the load still reads the settings' store, and it
    leaves the process environment and MLflow's globals as they were."""
    import mlflow

    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    mlflow.set_tracking_uri(elsewhere)  # reset after the test by conftest
    mlflow.set_registry_uri(elsewhere)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    environ = dict(os.environ)
    served = load_served_model(settings, MODEL, "challenger", None)
    assert (served.version, served.alias, served.kind) == (2, "challenger", "linear")
    assert dict(os.environ) == environ
    assert mlflow.get_tracking_uri() == elsewhere and mlflow.get_registry_uri() == elsewhere
