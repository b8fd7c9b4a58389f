"""POST /predict: one record, a list of records, or columns.

This is the sanctioned exception to the FastAPI conventions (section 3 of the design), for
speed: the endpoint takes the raw `Request`, reads the body straight from the ASGI channel,
validates it once against the served model's pydantic schemas, scores it with the compiled
scorer, and answers with pre-rendered bytes. The app's holder, metrics and body limit come from
`app.state` (no `Depends` on this path), and the route sits on the app itself, first (see
:func:`install`). The request and response schemas shown in /docs follow
the model in memory (see :mod:`flightdelay.serving.openapi`).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from flightdelay.serving.guard import DISCONNECTED
from flightdelay.serving.metrics import ServiceMetrics
from flightdelay.serving.responses import JSONAnswer, ORJSONResponse, error
from flightdelay.serving.runtime import ServedModel
from flightdelay.serving.schemas import PredictResponse


async def predict(request: Request) -> Response:
    """Probability of delay per record (the raw hot path: see the module docstring)."""
    state = request.app.state
    holder = state.holder
    served = holder.current  # one read: this request uses this model throughout
    if served is None:
        return error(503, "no model loaded yet", reason=holder.last_error)
    limit = state.settings.api_max_body_bytes
    try:
        body = await read_body(request, limit)
    except ClientDisconnect:  # the client left mid-body: nothing to answer, and no error
        return error(DISCONNECTED, "client disconnected")
    if body is None:
        return error(413, f"body larger than {limit} bytes (API_MAX_BODY_BYTES)")
    return score_body(served, body, state.metrics)


def install(app: FastAPI) -> None:
    """Add POST /predict to `app` itself. Not through an APIRouter: FastAPI resolves the routes
    of an included router on every request, about 15 microseconds the hot path does not pay."""
    app.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        response_model=PredictResponse,
        summary="Score one record, a list of records, or columns",
        responses={
            400: {"description": "invalid JSON"},
            413: {"description": "batch too large"},
            422: {"description": "a field is wrong (named in `detail`)"},
            503: {"description": "no model loaded yet"},
        },
    )


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body straight from the ASGI channel: what `Request.body()` returns, without
    its async generator (one message and no copy for a small body). None once it passes `limit`
    bytes: reading stops there, and a declared `Content-Length` beyond it is refused before
    anything is read."""
    for key, value in request.scope["headers"]:
        if key == b"content-length":
            if not value.isdigit() or int(value) > limit:
                return None
            break
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


_BATCH = re.compile(rb'\s*(?:\[|\{\s*"columns"\s*:)')  # a list, or the columnar form


def _batch_columns(served: ServedModel, body: bytes, columnar: bool) -> tuple[dict[str, Any], int]:
    """(columns, record count) of a list or columnar body; raises ValidationError."""
    schemas = served.schemas
    names = schemas.names
    if not columnar:
        records = schemas.many.validate_json(body)
        return {c: [r.__dict__[c] for r in records] for c in names}, len(records)
    data = schemas.cols.validate_json(body).columns
    cols = {c: getattr(data, c) for c in names}
    lengths = {len(v) for v in cols.values()}
    return cols, (lengths.pop() if len(lengths) == 1 else -1)


def score_body(served: ServedModel, body: bytes, metrics: ServiceMetrics) -> Response:
    """Validate `body` against the model's schemas, score it, and build the response.

    Bodies: one record (object), a list of records, or `{"columns": {name: [values]}}`.
    """
    form = _BATCH.match(body)
    columnar = batch = False
    try:
        if form is None:
            record = served.schemas.one.validator.validate_json(body)
            p, unknown = served.scorer.score_one(record.__dict__)
            metrics.count_predictions(served.version, 1)
            return JSONAnswer(_single_answer(served, p, unknown))
        batch = True
        columnar = not form.group().endswith(b"[")
        cols, n = _batch_columns(served, body, columnar)
    except ValidationError as exc:
        status, message, errors = describe_errors(exc, batch)
        return ORJSONResponse({"detail": message, "errors": errors[:20]}, status_code=status)
    if n < 0:
        return error(422, "columns: every column must have the same length")
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
