"""GET /model (what is served, with its lineage), POST /model (serve another alias or version)
and POST /model/reload (back to MODEL_ALIAS). The two POSTs need the bearer API_TOKEN."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from flightdelay.serving.deps import HolderDep, SettingsDep, TokenRequired
from flightdelay.serving.responses import ORJSONResponse, error
from flightdelay.serving.runtime import ModelHolder, ModelUnavailable
from flightdelay.serving.schemas import ModelAssign, ModelInfo

router = APIRouter()


@router.get("/model", response_model=ModelInfo, summary="The model in memory and its lineage")
async def get_model(holder: HolderDep) -> Response:
    """The served model's name, version, alias, run, metrics, params and scorer."""
    served = holder.current
    if served is None:
        return error(503, "no model loaded yet", reason=holder.last_error)
    return ORJSONResponse(served.info.model_dump())


@router.post(
    "/model",
    response_model=ModelInfo,
    summary="Serve another alias or version",
    dependencies=[TokenRequired],
)
async def assign_model(assign: ModelAssign, holder: HolderDep) -> Response:
    """Load the given alias or version, check it, swap it in; the old model serves until then
    and keeps serving when the new one fails."""
    if (assign.alias is None) == (assign.version is None):
        return error(422, "give exactly one of 'alias' or 'version'")
    return await swap(holder, assign.alias, assign.version)


@router.post(
    "/model/reload",
    response_model=ModelInfo,
    summary="Re-resolve MODEL_ALIAS",
    dependencies=[TokenRequired],
)
async def reload_model(holder: HolderDep, settings: SettingsDep) -> Response:
    """Serve MODEL_ALIAS again (undoes a POST /model)."""
    return await swap(holder, settings.model_alias, None)


async def swap(holder: ModelHolder, alias: str | None, version: int | None) -> Response:
    """Swap in a thread (the load blocks); the answer is the new model or why it failed, with
    the model still serving."""
    try:
        served = await run_in_threadpool(holder.swap, alias, version)
    except ModelUnavailable as exc:
        current = holder.current
        return error(exc.status, str(exc), serving=current.ref.model_dump() if current else None)
    return ORJSONResponse(served.info.model_dump())
