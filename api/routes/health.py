"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from isales_stats.api.dependencies import RedisDep
from isales_stats.api.schemas import ProbeStatus

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=ProbeStatus)
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ProbeStatus,
    responses={503: {"model": ProbeStatus, "description": "Redis does not answer."}},
)
async def readyz(redis: RedisDep) -> dict[str, str] | JSONResponse:
    """Redis answers: the API can serve statistics."""
    try:
        await redis.ping()
    except (RedisError, OSError):
        return JSONResponse({"status": "redis unreachable"}, status_code=503)
    return {"status": "ok"}
