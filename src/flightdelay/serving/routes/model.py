"""GET /model (what is served, with its lineage and the fleet's pin), POST /model (serve another
alias or version fleet-wide) and POST /model/reload (clear the pin: back to `@champion`).

The two POSTs need the bearer API_TOKEN, checked from the headers by the guard middleware before
any body byte is read. They change what the *fleet* serves: the registry's `@serving` alias and
its pin (see :mod:`flightdelay.serving.runtime.fleet`); the replica that got the request swaps at
once, the others follow within API_POLL_SECONDS, and the answer says when.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from flightdelay.serving.deps import HolderDep, SettingsDep, TokenRequired
from flightdelay.serving.openapi import error_responses
from flightdelay.serving.responses import ORJSONResponse, error
from flightdelay.serving.runtime import ModelHolder, ModelUnavailable, ServedModel
from flightdelay.serving.runtime.fleet import fleet_answer
from flightdelay.serving.schemas import ModelAssign, ModelAssigned, ModelInfo

router = APIRouter()


@router.get(
    "/model",
    response_model=ModelInfo,
    summary="The model in memory, its lineage and the fleet's pin",
    responses=error_responses(503),
)
async def get_model(holder: HolderDep) -> Response:
    """The served model's name, version, alias, run, metrics, params, scorer, and the registry's
    serving pin as this replica last read it (at its load and every poll)."""
    served = holder.current
    if served is None:
        return error(503, "no model loaded yet", reason=holder.last_error)
    return ORJSONResponse({**served.info.model_dump(), "pin": holder.pin})


@router.post(
    "/model",
    response_model=ModelAssigned,
    summary="Serve another alias or version, fleet-wide",
    dependencies=[TokenRequired],
    responses=error_responses(401, 403, 404, 413, 422, 503),
)
async def assign_model(assign: ModelAssign, holder: HolderDep, settings: SettingsDep) -> Response:
    """Load the given alias or version here and check it; then pin it as the registry's
    `@serving` (every replica following it serves it within API_POLL_SECONDS, restarts
    included) and swap it in here. The old model serves until then, and keeps serving (with
    nothing moved in the registry) when the new one fails."""
    if (assign.alias is None) == (assign.version is None):
        return error(422, "give exactly one of 'alias' or 'version'")
    reason = assign.reason or "POST /model"
    return await swap(holder, settings, lambda: holder.assign(assign.alias, assign.version, reason))


@router.post(
    "/model/reload",
    response_model=ModelAssigned,
    summary="Clear the pin: the fleet follows @champion again",
    dependencies=[TokenRequired],
    responses=error_responses(401, 403, 404, 413, 422, 503),
)
async def reload_model(holder: HolderDep, settings: SettingsDep) -> Response:
    """Undo a POST /model: clear the registry's pin (`@serving` back to `@champion`) and serve
    MODEL_ALIAS again here; the other replicas follow within API_POLL_SECONDS."""
    return await swap(holder, settings, holder.release)


async def swap(
    holder: ModelHolder, settings: SettingsDep, action: Callable[[], ServedModel]
) -> Response:
    """Run `action` in a thread (the load blocks); the answer is the new model and when the
    fleet follows, or why it failed, with the model still serving."""
    try:
        served = await run_in_threadpool(action)
    except ModelUnavailable as exc:
        current = holder.current
        return error(exc.status, str(exc), serving=current.ref.model_dump() if current else None)
    fleet = fleet_answer(settings.model_alias, served.version, settings.api_poll_seconds)
    body: dict[str, Any] = {**served.info.model_dump(), "pin": holder.pin, "fleet": fleet}
    return ORJSONResponse(body)
