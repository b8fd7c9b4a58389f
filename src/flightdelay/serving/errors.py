"""One error shape everywhere, `{"detail": "<one line naming what is wrong>", ...}` (the
`Problem` schema): FastAPI's validation errors and Starlette's HTTP errors are rewritten to it,
without echoing what the client sent."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from flightdelay.serving.responses import ORJSONResponse

MAX_ERRORS = 20


def clean_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic/FastAPI errors as JSON-ready dicts: type, loc, msg (no input, no context)."""
    return [
        {"type": str(e.get("type")), "loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg")}
        for e in list(errors)[:MAX_ERRORS]
    ]


async def validation_error(_: Request, exc: Exception) -> ORJSONResponse:
    """422 naming the first wrong field (400 when the body is not JSON)."""
    assert isinstance(exc, RequestValidationError)
    errors = clean_errors(exc.errors())
    first = errors[0] if errors else {"type": "", "loc": [], "msg": "invalid request"}
    if first["type"] == "json_invalid":
        return ORJSONResponse({"detail": "body is not valid JSON", "errors": errors}, 400)
    loc = [p for p in first["loc"] if p != "body"]
    field = ".".join(loc) or "body"
    detail = f"field '{field}': {first['msg']}"
    return ORJSONResponse({"detail": detail, "errors": errors}, status_code=422)


async def http_error(_: Request, exc: Exception) -> ORJSONResponse:
    """Starlette's HTTP errors (404, 405, ...) in the one shape, headers kept."""
    assert isinstance(exc, HTTPException)
    return ORJSONResponse(
        {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on `app`."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
