"""The model service: `uvicorn flightdelay.serving.app:create_app --factory`.

Endpoints: POST /predict, GET /model, POST /model, POST /model/reload, GET /health, GET /ready,
GET /metrics, and the OpenAPI docs at /docs and /redoc, which work offline (their JavaScript and
CSS come from a package, not a CDN). The /predict schema follows the model in memory.

POST /predict itself is claimed by :class:`Service` before any middleware or routing and answered
by the hot path (:mod:`flightdelay.serving.hotpath`); everything else is the FastAPI app.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from flightdelay.core.config import ServiceSettings, get_service_settings
from flightdelay.serving.deps import AuthError, auth_error_handler
from flightdelay.serving.errors import install_error_handlers
from flightdelay.serving.guard import GuardMiddleware
from flightdelay.serving.hotpath import PredictEndpoint
from flightdelay.serving.metrics import MetricsMiddleware, ServiceMetrics
from flightdelay.serving.openapi import install_dynamic_openapi
from flightdelay.serving.responses import ORJSONResponse
from flightdelay.serving.routes import docs, model, ops, predict
from flightdelay.serving.runtime import ModelHolder
from flightdelay.serving.scrub import install_log_scrubbing
from flightdelay.serving.telemetry import RequestIdMiddleware, RequestIds, install_json_logging
from flightdelay.serving.workers import WorkerShare


class Service(FastAPI):
    """The FastAPI app, with POST /predict (that exact path) dispatched to the hot path first:
    no middleware, routing or dependency injection on it (it counts its own metrics)."""

    predict_endpoint: PredictEndpoint | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.predict_endpoint
        if hot is not None and is_predict(scope):
            await hot(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def is_predict(scope: Scope) -> bool:
    """Whether the request is POST /predict (other methods get FastAPI's 405, or OPTIONS)."""
    return bool(
        scope["type"] == "http" and scope["path"] == "/predict" and scope["method"] == "POST"
    )


def create_app(
    settings: ServiceSettings | None = None, holder: ModelHolder | None = None
) -> Service:
    """Build the service. Nothing loads until start-up; the model loads in the background."""
    settings = settings or get_service_settings()
    install_log_scrubbing("uvicorn.error", "flightdelay.serving.guard")
    install_json_logging()  # uvicorn has configured its loggers: every line from here is JSON
    holder = holder or ModelHolder(settings)
    metrics = ServiceMetrics(
        instance=settings.api_instance or f"{socket.gethostname()}:{os.getpid()}"
    )
    holder.listeners.append(metrics.on_model_event)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        metrics.share = WorkerShare.for_this_process()  # None unless uvicorn runs workers
        if metrics.share is not None:
            metrics.share.start(metrics.snapshot)
        holder.start()
        yield
        holder.stop()
        if metrics.share is not None:
            metrics.share.stop(metrics.snapshot)

    app = Service(
        title="flightdelay",
        summary="Probability that a flight arrives 15+ minutes late, from the registry's champion.",
        version="1",
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        docs_url=None,  # routes.docs: offline
        redoc_url=None,
    )
    app.state.settings, app.state.holder, app.state.metrics = settings, holder, metrics
    app.add_exception_handler(AuthError, auth_error_handler)
    install_error_handlers(app)
    predict.install(app)  # the hot path first, on the app itself
    for router in (model.router, ops.router):
        app.include_router(router)
    docs.install(app)
    install_dynamic_openapi(app, holder)
    app.add_middleware(GuardMiddleware, token=settings.api_token.get_secret_value())
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # counts the guard's answers too
    ids = RequestIds()
    app.add_middleware(RequestIdMiddleware, ids=ids)  # outermost: x-request-id on every answer
    app.predict_endpoint = PredictEndpoint(holder, metrics, settings.api_max_body_bytes, ids)
    return app
