"""Step 1 of a load: resolve an alias or a version into the registry's version record.

The client is explicit (`MlflowClient(tracking_uri=..., registry_uri=...)`): no global MLflow
state, no environment writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flightdelay.core.config import mask_url
from flightdelay.serving.runtime.served import ModelUnavailable

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

# MLflow error codes that mean "no such model, version or alias" (404), not "registry down".
MISSING_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})


def registry_client(uri: str) -> MlflowClient:
    """A client for the tracking store and model registry at `uri` (the same store)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def registry_error(
    exc: Exception, name: str, alias: str | None, version: int | None, uri: str
) -> ModelUnavailable:
    """The ModelUnavailable a failed registry call means: 404 for an unknown model, version or
    alias, 503 when the registry is unreachable or failing."""
    from mlflow.exceptions import MlflowException

    uri = mask_url(uri)
    if not isinstance(exc, MlflowException):  # network errors: requests/urllib3 exceptions
        return ModelUnavailable(f"registry at {uri} unreachable: {type(exc).__name__}: {exc}"[:300])
    missing = getattr(exc, "error_code", "") in MISSING_CODES
    what = f"version {version}" if version is not None else f"alias {str(alias)[:200]!r}"
    if missing:
        return ModelUnavailable(f"model {name!r} {what} not found in the registry at {uri}", 404)
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return ModelUnavailable(f"registry at {uri} unreachable or failing: {first}", 503)


def resolve(
    client: MlflowClient, name: str, alias: str | None, version: int | None, uri: str
) -> ModelVersion:
    """The version record of `name` at `version` (when given) or behind `alias`.

    Raises ModelUnavailable (404 unknown, 503 registry unreachable)."""
    try:
        if version is not None:
            return client.get_model_version(name, str(version))
        return client.get_model_version_by_alias(name, str(alias))
    except Exception as exc:
        raise registry_error(exc, name, alias, version, uri) from None
