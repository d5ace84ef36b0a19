"""Prometheus metrics of this API process, in Prometheus' text format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

router = APIRouter(tags=["operations"])


# Not in the OpenAPI document: its body is Prometheus' exposition format, not JSON.
@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Request counts by route and status, latency, flow-control and authentication refusals."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
