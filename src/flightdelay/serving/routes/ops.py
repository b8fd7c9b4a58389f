"""Operations: GET /health (liveness), GET /ready (a model is loaded), GET /metrics
(Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flightdelay.serving.deps import HolderDep, MetricsDep
from flightdelay.serving.responses import ORJSONResponse
from flightdelay.serving.schemas import Status

router = APIRouter()


@router.get("/health", response_model=Status, summary="Liveness: the process answers")
async def health(holder: HolderDep) -> Response:
    """Always 200 while the process runs; says whether a model is loaded."""
    return ORJSONResponse({"status": "ok", "ready": holder.current is not None})


@router.get("/ready", response_model=Status, summary="Readiness: a model is loaded")
async def ready(holder: HolderDep) -> Response:
    """200 with the served model, or 503 with why none is loaded yet."""
    served = holder.current
    if served is None:
        return ORJSONResponse(
            {"status": "not ready", "ready": False, "reason": holder.last_error},
            status_code=503,
        )
    return ORJSONResponse({"status": "ready", "ready": True, "model": served.ref.model_dump()})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus(holder: HolderDep, metrics: MetricsDep) -> Response:
    """The app's metrics in the Prometheus text format."""
    served = holder.current
    metrics.version.set(served.version if served else 0)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
