"""POST /predict's hot path: a plain ASGI endpoint that the app dispatches to before any of
FastAPI's and Starlette's per-request machinery (middleware stack, router, dependency injection,
request and response objects). This is the one place allowed to skip FastAPI's dependency
injection (section 3 of the design): the holder, metrics and body limit are bound when the app
is built.

What it keeps: the served model is read once per request (`holder.current`, so a swap never
mixes two models in one answer); the body limit (API_MAX_BODY_BYTES; a multi-message body is
refused after its first message when its declared `Content-Length` passes it, a chunked one as
soon as it does); the request metrics (it counts itself, as it bypasses MetricsMiddleware); the
`x-served-by` and `x-request-id` headers (the id that a failure's log line names); a client that
leaves mid-body is counted 499, not 500.

Bodies are validated by the model's compiled validator (:mod:`.validator`), bodies over a MiB
in slices with the event loop let run in between (:mod:`.slices`), and scored by the compiled
scorer, large batches column by column into numpy (:mod:`.runtime.batch`). Anything the
compiled validator refuses, any scorer but the compiled one, and any body whose colon count
says a key may be given twice, goes the reference way (:func:`.routes.predict.score_body`:
pydantic, whose 4xx names the field and the record), so the answers and errors are the same.
The route also stays declared on the FastAPI app, for /docs and /openapi.json.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
import orjson

from flightdelay.serving.guard import DISCONNECTED, content_length, read_bounded
from flightdelay.serving.metrics import ServiceMetrics
from flightdelay.serving.routes.predict import BATCH_FORM, score_body, single_answer, warnings
from flightdelay.serving.runtime import ModelHolder, ServedModel
from flightdelay.serving.runtime.batch import score_batch
from flightdelay.serving.runtime.scorer import LinearScorer
from flightdelay.serving.slices import SLICE_BYTES, columns_in_slices, records_in_slices
from flightdelay.serving.telemetry import HEADER, REQUEST_ID, RequestIds

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
_REFUSED = (msgspec.ValidationError, msgspec.DecodeError)


class Disconnected(Exception):
    """The client left before its body was read."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it passes `limit` bytes (reading stops there). A body in
    one message (the common case) never looks at the headers; one in several is refused after
    its first message when its `Content-Length` is malformed or passes `limit`."""
    message = await receive()
    if message["type"] != "http.request":
        raise Disconnected()
    chunk: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return chunk if len(chunk) <= limit else None
    declared = content_length(scope)
    if (declared is not None and not 0 <= declared <= limit) or len(chunk) > limit:
        return None
    from starlette.requests import ClientDisconnect

    try:
        return await read_bounded(receive, limit, first=chunk)
    except ClientDisconnect:
        raise Disconnected() from None


def answer(served: ServedModel, body: bytes, metrics: ServiceMetrics) -> tuple[int, bytes]:
    """(status, JSON answer) of a /predict body: the compiled way, else the reference way."""
    fast = fast_answer(served, body, metrics) if served.scorer.kind == "linear" else None
    return (200, fast) if fast is not None else reference(served, body, metrics)


def reference(served: ServedModel, body: bytes, metrics: ServiceMetrics) -> tuple[int, bytes]:
    """(status, JSON answer) the reference way: pydantic, whose 4xx names field and record."""
    response = score_body(served, body, metrics)
    return response.status_code, bytes(response.body)


async def large_answer(
    served: ServedModel, body: bytes, metrics: ServiceMetrics
) -> tuple[int, bytes]:
    """`answer` for a body over SLICE_BYTES: validated in slices (:mod:`.slices`)."""
    form = BATCH_FORM.match(body)
    if form is None or served.scorer.kind != "linear":
        return answer(served, body, metrics)
    columnar = not form.group().endswith(b"[")
    try:
        slicing = columns_in_slices if columnar else records_in_slices
        batch = await slicing(served, body)
    except _REFUSED:
        batch = None
    if batch is None:
        return reference(served, body, metrics)
    await asyncio.sleep(0)
    return 200, _batch(served, *batch, columnar, metrics)


def fast_answer(served: ServedModel, body: bytes, metrics: ServiceMetrics) -> bytes | None:
    """The answer when the compiled validator accepts `body` and no key can be repeated; None
    sends the body the reference way (see the module docstring)."""
    form = BATCH_FORM.match(body)
    try:
        if form is None:
            return _one(served, body, metrics)
        if form.group().endswith(b"["):
            return _records(served, body, metrics)
        return _columns(served, body, metrics)
    except _REFUSED:
        return None


def _one(served: ServedModel, body: bytes, metrics: ServiceMetrics) -> bytes | None:
    validator = served.schemas.validator
    record = validator.one.decode(body)
    if body.count(b":") != len(validator.names):  # more pairs than fields: maybe a duplicate
        return None
    p = served.struct_score(record)
    unknown: dict[str, list[str]] = {}
    if p is None:  # an unknown category, a learned missing one, or overflow: the general path
        p, unknown = served.scorer.score_one(validator.as_dict(record))
    metrics.count_predictions(served.version, 1)
    return single_answer(served, p, unknown)


def _records(served: ServedModel, body: bytes, metrics: ServiceMetrics) -> bytes | None:
    validator = served.schemas.validator
    records = validator.many.decode(body)
    if body.count(b":") != len(records) * len(validator.names):
        return None
    return _batch(served, validator.columns_of(records), len(records), False, metrics)


def _columns(served: ServedModel, body: bytes, metrics: ServiceMetrics) -> bytes | None:
    validator = served.schemas.validator
    data = validator.cols.decode(body).columns
    if body.count(b":") != 1 + len(validator.names):
        return None
    columns = dict(zip(validator.names, msgspec.structs.astuple(data), strict=True))
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:  # the reference way names the columns and their lengths
        return None
    return _batch(served, columns, lengths.pop(), True, metrics)


def _batch(
    served: ServedModel, columns: dict[str, Any], n: int, columnar: bool, metrics: ServiceMetrics
) -> bytes:
    """Score a validated batch and render its answer (as the reference way renders it)."""
    scorer = served.scorer
    assert isinstance(scorer, LinearScorer)
    if n <= scorer.SMALL:  # plain Python beats numpy's per-call overhead
        proba: Any = scorer.score_list(columns, n)
        unknown = scorer.unknown_categories(columns)
    else:
        proba, unknown = score_batch(scorer, columns, n)
    metrics.count_predictions(served.version, n)
    threshold, label = served.threshold, served.label
    payload: dict[str, Any] = {"model": served.ref_dict, "threshold": threshold}
    if columnar:
        labels = [p >= threshold for p in proba] if isinstance(proba, list) else proba >= threshold
        payload |= {"probability": proba, label: labels}
    else:
        values = proba if isinstance(proba, list) else proba.tolist()
        payload["predictions"] = [{"probability": p, label: p >= threshold} for p in values]
    payload["warnings"] = warnings(unknown)
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


class PredictEndpoint:
    """The ASGI endpoint of POST /predict (see the module docstring)."""

    def __init__(
        self,
        holder: ModelHolder,
        metrics: ServiceMetrics,
        limit: int,
        ids: RequestIds | None = None,
    ) -> None:
        self.holder, self.metrics, self.limit = holder, metrics, limit
        self.ids = ids or RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        status = 500
        rid = self.ids.of(scope["headers"])
        try:
            status, body = await self.respond(scope, receive)
        except Exception:
            token = REQUEST_ID.set(rid.decode())  # only a failure logs: the line names it
            log.exception("POST /predict failed")
            REQUEST_ID.reset(token)
            body = b'{"detail":"internal error"}'
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-length", b"%d" % len(body)),
                        _JSON,
                        self.metrics.instance_header,
                        (HEADER, rid),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            self.metrics.observe("POST", "/predict", status, time.perf_counter() - start)

    async def respond(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        """(status, body) of one request."""
        served = self.holder.current  # one read: this request uses this model throughout
        if served is None:
            reason = self.holder.last_error
            return 503, orjson.dumps({"detail": "no model loaded yet", "reason": reason})
        try:
            body = await read_body(scope, receive, self.limit)
        except Disconnected:  # the client left mid-body: nothing to answer, and no error
            return DISCONNECTED, b'{"detail":"client disconnected"}'
        if body is None:
            too_large = f"body larger than {self.limit} bytes (API_MAX_BODY_BYTES)"
            return 413, orjson.dumps({"detail": too_large})
        if len(body) > SLICE_BYTES:
            return await large_answer(served, body, self.metrics)
        return answer(served, body, self.metrics)
