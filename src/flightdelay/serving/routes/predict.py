"""POST /predict: one record, a list of records, or columns; the reference way.

POST /predict is served by the hot path, :class:`flightdelay.serving.hotpath.PredictEndpoint`,
which the app dispatches to before routing (the one place that skips FastAPI's dependency
injection). The route stays declared here, on the app itself, for /docs and /openapi.json (the
request and answer schemas follow the model in memory, see :mod:`flightdelay.serving.openapi`).
This module is also the reference way of validating a body: the served model's pydantic schemas,
whose errors name the field and the record; the hot path sends here every body its compiled
validator refuses.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from pydantic import ValidationError

from flightdelay.serving.metrics import ServiceMetrics
from flightdelay.serving.openapi import error_responses
from flightdelay.serving.responses import JSONAnswer, ORJSONResponse, error
from flightdelay.serving.runtime import ServedModel
from flightdelay.serving.schemas import PredictResponse


async def predict(request: Request) -> Response:
    """Probability of delay per record. Reached only when the app is served without its
    dispatcher: the hot path's endpoint answers, through FastAPI."""
    from flightdelay.serving.hotpath import PredictEndpoint

    state = request.app.state
    endpoint = PredictEndpoint(state.holder, state.metrics, state.settings.api_max_body_bytes)
    status, body = await endpoint.respond(request.scope, request.receive)
    return Response(body, status_code=status, media_type="application/json")


def install(app: FastAPI) -> None:
    """Declare POST /predict on `app` itself (for its OpenAPI schema and other methods' 405)."""
    app.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        response_model=PredictResponse,
        summary="Score one record, a list of records, or columns",
        responses=error_responses(400, 413, 422, 503),
    )


_UNION_TAGS = {"str", "int", "float", "constrained-str", "constrained-int"}


def _field_of(loc: list[Any], batch: bool) -> tuple[str, str]:
    """("record N: " or "", dotted field path) of an error location, without pydantic's
    union-member tags and the columnar form's wrapper."""
    where = ""
    if batch and loc and isinstance(loc[0], int):
        where = f"record {loc.pop(0)}: "
    if loc[:1] == ["columns"]:
        loc = loc[1:]
        if len(loc) >= 2 and isinstance(loc[1], int):
            where, loc = f"record {loc[1]}: ", [loc[0], *loc[2:]]
    loc = [p for p in loc if not (isinstance(p, str) and p in _UNION_TAGS)]
    return where, ".".join(str(p) for p in loc) or "body"


def _message(first: dict[str, Any], errors: list[Any]) -> str:
    """Pydantic's message, or one line for a categorical that is neither string nor int."""
    kinds = {e["type"] for e in errors if e["loc"][: len(first["loc"]) - 1] == first["loc"][:-1]}
    if first["type"] in ("string_type", "int_type") and {"string_type", "int_type"} <= kinds:
        return "Input should be a string or an integer (not a float or a boolean)"
    return str(first["msg"])


def describe_errors(exc: ValidationError, batch: bool) -> tuple[int, str, list[Any]]:
    """(status, one-line message naming the field, pydantic's error list) for a bad body."""
    errors: list[Any] = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return 400, f"body is not valid JSON: {first['msg']}", errors
    loc = list(first["loc"])
    if first["type"] == "too_long" and len(loc) <= 2:
        if loc[:1] == ["columns"] and len(loc) == 2:
            return 413, f"column '{loc[1]}' too long (API_MAX_BATCH): {first['msg']}", errors
        return 413, f"too many records: {first['msg']}", errors
    where, field = _field_of(loc, batch)
    return 422, f"{where}field '{field}': {_message(first, errors)}", errors


BATCH_FORM = re.compile(rb'\s*(?:\[|\{\s*"columns"\s*:)')  # a list, or the columnar form


class DuplicateKey(Exception):
    """A JSON object names one key twice (the message names it)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(f"field '{key[:100]}': given twice in one object")
        seen[key] = value
    return seen


def check_duplicates(body: bytes) -> None:
    """Raise DuplicateKey when an object of `body` repeats a key. The caller only asks when
    the body has more colons than the validated objects have fields: a colon per key, more
    only inside strings (so the common case costs one `bytes.count`)."""
    json.loads(body, object_pairs_hook=_no_duplicates)


class BadColumns(Exception):
    """A columnar body whose columns differ in length (the message names them)."""


def _batch_columns(served: ServedModel, body: bytes, columnar: bool) -> tuple[dict[str, Any], int]:
    """(columns, record count) of a list or columnar body; raises ValidationError or
    BadColumns."""
    schemas = served.schemas
    names = schemas.names
    if not columnar:
        records = schemas.many.validate_json(body)
        return {c: [r.__dict__[c] for r in records] for c in names}, len(records)
    data = schemas.cols.validate_json(body).columns
    cols = {c: getattr(data, c) for c in names}
    lengths = {c: len(v) for c, v in cols.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"'{c}' has {n}" for c, n in lengths.items())
        raise BadColumns(f"columns differ in length: {shown}"[:500])
    return cols, next(iter(lengths.values()), 0)


def score_body(served: ServedModel, body: bytes, metrics: ServiceMetrics) -> Response:
    """Validate `body` against the model's schemas, score it, and build the response.

    Bodies: one record (object), a list of records, or `{"columns": {name: [values]}}`.
    """
    form = BATCH_FORM.match(body)
    columnar = batch = False
    try:
        if form is None:
            record = served.schemas.one.validator.validate_json(body)
            if body.count(b":") != len(served.schemas.names):  # more pairs than fields?
                check_duplicates(body)
            p, unknown = served.scorer.score_one(record.__dict__)
            metrics.count_predictions(served.version, 1)
            return JSONAnswer(single_answer(served, p, unknown))
        batch = True
        columnar = not form.group().endswith(b"[")
        cols, n = _batch_columns(served, body, columnar)
        pairs = 1 + len(cols) if columnar else n * len(cols)
        if body.count(b":") != pairs:
            check_duplicates(body)
    except ValidationError as exc:
        status, message, errors = describe_errors(exc, batch)
        return ORJSONResponse({"detail": message, "errors": errors[:20]}, status_code=status)
    except (BadColumns, DuplicateKey) as exc:
        return error(422, str(exc))
    return _batch_answer(served, cols, n, columnar, metrics)


def _batch_answer(
    served: ServedModel, cols: dict[str, Any], n: int, columnar: bool, metrics: ServiceMetrics
) -> Response:
    """Score a validated list or columnar body and build its answer."""
    proba = served.scorer.score_list(cols, n)
    threshold = served.threshold
    metrics.count_predictions(served.version, n)
    unknown = served.scorer.unknown_categories(cols)
    label = served.label
    if columnar:
        result: dict[str, Any] = {"probability": proba, label: [p >= threshold for p in proba]}
    else:
        result = {"predictions": [{"probability": p, label: p >= threshold} for p in proba]}
    return _answer(served, result, unknown)


def warnings(unknown: dict[str, list[str]]) -> list[str]:
    return [
        f"unknown {col} value(s) ignored by the encoder: {', '.join(v[:10])}"
        for col, v in unknown.items()
    ]


def _answer(served: ServedModel, result: dict[str, Any], unknown: dict[str, list[str]]) -> Response:
    """The /predict answer: which model answered, its threshold, `result`, warnings."""
    payload = {"model": served.ref_dict, "threshold": served.threshold, **result}
    payload["warnings"] = warnings(unknown)
    return JSONAnswer(orjson.dumps(payload))


def single_answer(served: ServedModel, p: float, unknown: dict[str, list[str]]) -> bytes:
    """`_answer` for one record, byte for byte, from the model's pre-rendered head (the hot
    path: no dicts to build, one float to render)."""
    return b"".join(
        (
            served.answer_head,
            orjson.dumps(p),
            served.answer_tails[p >= served.threshold],
            orjson.dumps(warnings(unknown)) if unknown else b"[]",
            b"}",
        )
    )
