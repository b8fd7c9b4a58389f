"""The service's dependencies (`Annotated[..., Depends(...)]`): settings, the model holder, the
metrics, and the bearer-token check of the admin endpoints.

Everything lives on `app.state` (set by `create_app`), so several apps can share a process.
The functions are `async` so FastAPI calls them inline instead of in its thread pool.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from flightdelay.core.config import ServiceSettings
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
    """A missing (401) or wrong (403) bearer token."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def check_token(authorization: str | None, token: str) -> None:
    """Raise AuthError unless `authorization` is `Bearer <token>` (compared in constant time)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise AuthError(401, "missing bearer token (Authorization: Bearer <API_TOKEN>)")
    given = authorization.split(" ", 1)[1].strip().encode()
    if not secrets.compare_digest(given, token.encode()):
        raise AuthError(403, "wrong token")


async def require_token(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Admin endpoints: the request must carry `Authorization: Bearer <API_TOKEN>`."""
    check_token(authorization, settings.api_token.get_secret_value())


async def auth_error_handler(_: Request, exc: Exception) -> ORJSONResponse:
    """AuthError as `{"detail": ...}`, with `WWW-Authenticate: Bearer` on 401."""
    assert isinstance(exc, AuthError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return ORJSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)


TokenRequired = Depends(require_token)
