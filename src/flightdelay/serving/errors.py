"""One error shape everywhere, `{"detail": "<one line naming what is wrong>", ...}` (the
`Problem` schema): FastAPI's validation errors and Starlette's HTTP errors are rewritten to it,
without echoing what the client sent."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from flightdelay.serving.responses import ORJSONResponse

MAX_ERRORS = 20
METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


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


async def http_error(request: Request, exc: Exception) -> ORJSONResponse:
    """Starlette's HTTP errors (404, 405, ...) in the one shape, headers kept; a 405's `Allow`
    lists the methods of every route on the path (Starlette names only the first route's, so
    `OPTIONS /model` said `GET` although `POST /model` exists)."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return ORJSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app fully matches on the request's path, sorted (asked
    of each route through Starlette's public `matches`, included routers too)."""
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on `app`."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
