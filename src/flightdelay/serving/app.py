"""The model service: `uvicorn flightdelay.serving.app:create_app --factory`.

Endpoints: POST /predict, GET /model, POST /model, POST /model/reload, GET /health, GET /ready,
GET /metrics, and the OpenAPI docs at /docs (the /predict schema follows the model in memory).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from flightdelay.core.config import ServiceSettings, get_service_settings
from flightdelay.serving.metrics import MetricsMiddleware, ServiceMetrics
from flightdelay.serving.model_holder import ModelHolder, ModelUnavailable, ServedModel
from flightdelay.serving.schemas import ModelAssign, ModelInfo, PredictResponse, Status


class ORJSONResponse(JSONResponse):
    """JSON via orjson (several times faster for large prediction lists)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _error(status: int, message: str, **extra: Any) -> ORJSONResponse:
    return ORJSONResponse({"detail": message, **extra}, status_code=status)


def describe_errors(exc: ValidationError, batch: bool) -> tuple[int, str, list[Any]]:
    """(status, one-line message naming the field, pydantic's error list) for a bad body."""
    errors: list[Any] = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return 400, f"body is not valid JSON: {first['msg']}", errors
    if first["type"] == "too_long" and len(first["loc"]) <= 2:
        return 413, f"too many records: {first['msg']}", errors
    loc = list(first["loc"])
    where = ""
    if batch and loc and isinstance(loc[0], int):
        where = f"record {loc.pop(0)}: "
    if loc[:1] == ["columns"]:
        loc = loc[1:]
    field = ".".join(str(p) for p in loc) or "body"
    return 422, f"{where}field '{field}': {first['msg']}", errors


def create_app(
    settings: ServiceSettings | None = None, holder: ModelHolder | None = None
) -> FastAPI:
    """Build the service. Nothing loads until start-up; the model loads in the background."""
    settings = settings or get_service_settings()
    holder = holder or ModelHolder(settings)
    metrics = ServiceMetrics(
        instance=settings.api_instance or f"{socket.gethostname()}:{os.getpid()}"
    )
    holder.listeners.append(metrics.on_model_event)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        holder.start()
        yield
        holder.stop()

    app = FastAPI(
        title="flightdelay",
        summary="Probability that a flight arrives 15+ minutes late, from the registry's champion.",
        version="1",
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
    )
    app.state.holder = holder
    app.state.metrics = metrics

    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise _Auth(401, "missing bearer token (Authorization: Bearer <API_TOKEN>)")
        given = authorization.split(" ", 1)[1].strip().encode()
        if not secrets.compare_digest(given, settings.api_token.get_secret_value().encode()):
            raise _Auth(403, "wrong token")

    @app.exception_handler(_Auth)
    async def _auth_handler(_: Request, exc: _Auth) -> ORJSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return ORJSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        summary="Score one record, a list of records, or columns",
        responses={
            400: {"description": "invalid JSON"},
            413: {"description": "batch too large"},
            422: {"description": "a field is wrong (named in `detail`)"},
            503: {"description": "no model loaded yet"},
        },
    )
    async def predict(request: Request) -> Response:
        served = holder.current  # one read: this request uses this model throughout
        if served is None:
            return _error(503, "no model loaded yet", reason=holder.last_error)
        body = await read_body(request, settings.api_max_body_bytes)
        if body is None:
            return _error(
                413, f"body larger than {settings.api_max_body_bytes} bytes (API_MAX_BODY_BYTES)"
            )
        return score_body(served, body, metrics)

    @app.get("/model", response_model=ModelInfo, summary="The model in memory and its lineage")
    async def get_model() -> Response:
        served = holder.current
        if served is None:
            return _error(503, "no model loaded yet", reason=holder.last_error)
        return ORJSONResponse(served.info.model_dump())

    @app.post(
        "/model",
        response_model=ModelInfo,
        summary="Serve another alias or version",
        dependencies=[Depends(require_token)],
    )
    async def assign_model(assign: ModelAssign) -> Response:
        if (assign.alias is None) == (assign.version is None):
            return _error(422, "give exactly one of 'alias' or 'version'")
        return await _swap(assign.alias, assign.version)

    @app.post(
        "/model/reload",
        response_model=ModelInfo,
        summary="Re-resolve MODEL_ALIAS",
        dependencies=[Depends(require_token)],
    )
    async def reload_model() -> Response:
        return await _swap(settings.model_alias, None)

    async def _swap(alias: str | None, version: int | None) -> Response:
        try:
            served = await run_in_threadpool(holder.swap, alias, version)
        except ModelUnavailable as exc:
            current = holder.current
            return _error(
                exc.status, str(exc), serving=current.ref.model_dump() if current else None
            )
        return ORJSONResponse(served.info.model_dump())

    @app.get("/health", response_model=Status, summary="Liveness: the process answers")
    async def health() -> Response:
        return ORJSONResponse({"status": "ok", "ready": holder.current is not None})

    @app.get("/ready", response_model=Status, summary="Readiness: a model is loaded")
    async def ready() -> Response:
        served = holder.current
        if served is None:
            return ORJSONResponse(
                {"status": "not ready", "ready": False, "reason": holder.last_error},
                status_code=503,
            )
        return ORJSONResponse({"status": "ready", "ready": True, "model": served.ref.model_dump()})

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        served = holder.current
        metrics.version.set(served.version if served else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    _install_dynamic_openapi(app, holder)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


class _Auth(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body straight from the ASGI channel: what `Request.body()` returns, without
    its async generator (one message and no copy for a small body). None once it passes `limit`
    bytes: reading stops there."""
    chunks = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class JSONAnswer(Response):
    """Already-rendered JSON with status 200: starlette's Response without its general-purpose
    header building (the hot path answers with it; about 0.6 microseconds a request)."""

    media_type = "application/json"

    def __init__(self, body: bytes) -> None:  # no super().__init__(): nothing to render
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"),
        ]


_BATCH = re.compile(rb'\s*(?:\[|\{\s*"columns"\s*:)')  # a list, or the columnar form


def score_body(served: ServedModel, body: bytes, metrics: ServiceMetrics) -> Response:
    """Validate `body` against the model's schemas, score it, and build the response.

    Bodies: one record (object), a list of records, or `{"columns": {name: [values]}}`.
    """
    schemas = served.schemas
    form = _BATCH.match(body)
    columnar = batch = False
    try:
        if form is None:
            record = schemas.one.validator.validate_json(body)
            p, unknown = served.scorer.score_one(record.__dict__)
            metrics.count_predictions(served.version, 1)
            return JSONAnswer(_single_answer(served, p, unknown))
        names = schemas.names
        if form.group().endswith(b"["):
            batch = True
            records = schemas.many.validate_json(body)
            cols = {c: [r.__dict__[c] for r in records] for c in names}
            n = len(records)
        else:
            columnar = batch = True
            data = schemas.cols.validate_json(body).columns
            cols = {c: getattr(data, c) for c in names}
            lengths = {len(v) for v in cols.values()}
            if len(lengths) != 1:
                return _error(422, "columns: every column must have the same length")
            n = lengths.pop()
    except ValidationError as exc:
        status, message, errors = describe_errors(exc, batch)
        return ORJSONResponse({"detail": message, "errors": errors[:20]}, status_code=status)

    proba = served.scorer.score_list(cols, n)
    threshold = served.threshold
    metrics.count_predictions(served.version, n)
    unknown = served.scorer.unknown_categories(cols)
    if columnar:
        result: dict[str, Any] = {
            "probability": proba,
            "delayed": [p >= threshold for p in proba],
        }
    else:
        result = {"predictions": [_prediction(p, threshold) for p in proba]}
    return _answer(served, result, unknown)


def _prediction(p: float, threshold: float) -> dict[str, Any]:
    return {"probability": p, "delayed": p >= threshold}


def _warnings(unknown: dict[str, list[str]]) -> list[str]:
    return [
        f"unknown {col} value(s) ignored by the encoder: {', '.join(v[:10])}"
        for col, v in unknown.items()
    ]


def _answer(served: ServedModel, result: dict[str, Any], unknown: dict[str, list[str]]) -> Response:
    """The /predict answer: which model answered, its threshold, `result`, warnings."""
    payload = {"model": served.ref_dict, "threshold": served.threshold, **result}
    payload["warnings"] = _warnings(unknown)
    return JSONAnswer(orjson.dumps(payload))


_DELAYED = (b',"delayed":false}],"warnings":', b',"delayed":true}],"warnings":')


def _single_answer(served: ServedModel, p: float, unknown: dict[str, list[str]]) -> bytes:
    """`_answer` for one record, byte for byte, from the model's pre-rendered head (the hot
    path: no dicts to build, one float to render)."""
    return b"".join(
        (
            served.answer_head,
            orjson.dumps(p),
            _DELAYED[p >= served.threshold],
            orjson.dumps(_warnings(unknown)) if unknown else b"[]",
            b"}",
        )
    )


def _install_dynamic_openapi(app: FastAPI, holder: ModelHolder) -> None:
    """Make /docs show the request schema of the model in memory (rebuilt after a swap)."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        served = holder.current
        key = f"{served.name}:{served.version}" if served else "none"
        if cache.get("key") == key:
            return cache["schema"]  # type: ignore[no-any-return]
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        if served is not None:
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (served.schemas.record, served.schemas.columns):
                js = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(js.pop("$defs", {}))
                components[model.__name__] = js
            record_ref = {"$ref": "#/components/schemas/FlightRecord"}
            examples = {}
            if served.example:
                examples = {
                    "one record": {"value": served.example},
                    "a list": {"value": [served.example, served.example]},
                    "columns": {
                        "value": {"columns": {k: [v, v] for k, v in served.example.items()}}
                    },
                }
            schema["paths"]["/predict"]["post"]["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                record_ref,
                                {"type": "array", "items": record_ref},
                                {"$ref": "#/components/schemas/FlightColumns"},
                            ]
                        },
                        "examples": examples,
                    }
                },
            }
        cache.update(key=key, schema=schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
