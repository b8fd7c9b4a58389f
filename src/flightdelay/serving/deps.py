"""The service's dependencies (`Annotated[..., Depends(...)]`): settings, the model holder, the
metrics, and the bearer-token check of the admin endpoints.

Everything lives on `app.state` (set by `create_app`), so several apps can share a process.
The functions are `async` so FastAPI calls them inline instead of in its thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flightdelay.core.config import ServiceSettings
from flightdelay.serving.guard import check_bearer
from flightdelay.serving.metrics import ServiceMetrics
from flightdelay.serving.responses import ORJSONResponse
from flightdelay.serving.runtime import ModelHolder


async def get_settings(request: Request) -> ServiceSettings:
    """The app's settings."""
    settings: ServiceSettings = request.app.state.settings
    return settings


async def get_holder(request: Request) -> ModelHolder:
    """The app's model holder."""
    holder: ModelHolder = request.app.state.holder
    return holder


async def get_metrics(request: Request) -> ServiceMetrics:
    """The app's metrics."""
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]


class AuthError(Exception):
    """Swaps disabled (403), a missing (401) or a wrong (403) bearer token."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def check_token(authorization: str | None, token: str) -> None:
    """Raise AuthError unless `authorization` is `Bearer <token>` (see `guard.check_bearer`)."""
    raw = authorization.encode("latin-1", "replace") if authorization is not None else None
    refused = check_bearer(raw, token)
    if refused is not None:
        raise AuthError(*refused)


bearer = HTTPBearer(
    auto_error=False, description="Authorization: Bearer <API_TOKEN> (POST /model, /model/reload)"
)


async def require_token(
    request: Request,
    settings: SettingsDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> None:
    """Swap endpoints: `Authorization: Bearer <API_TOKEN>`. The guard middleware checked it
    from the headers before the body was read; this documents the scheme in OpenAPI and checks
    again (an app mounted without the guard stays closed)."""
    check_token(request.headers.get("authorization"), settings.api_token.get_secret_value())


async def auth_error_handler(_: Request, exc: Exception) -> ORJSONResponse:
    """AuthError as `{"detail": ...}`, with `WWW-Authenticate: Bearer` on 401."""
    assert isinstance(exc, AuthError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return ORJSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)


TokenRequired = Depends(require_token)
