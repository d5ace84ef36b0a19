"""Prometheus metrics of this API process, in Prometheus' text format; with them, the abandon
rates and pacing of the VDNs of ISALES_DECISION_METRICS_VDNS (api/decision_metrics.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from isales_stats.api.decision_metrics import decision_metrics
from isales_stats.api.dependencies import SettingsDep, one_reader
from isales_stats.engine.decisions import DecisionsReader

router = APIRouter(tags=["operations"])


# Not in the OpenAPI document: its body is Prometheus' exposition format, not JSON.
@router.get("/metrics", include_in_schema=False)
async def metrics(
    settings: SettingsDep,
    reader: Annotated[DecisionsReader, Depends(one_reader(DecisionsReader))],
) -> Response:
    """Request counts by route and status, latency, flow-control and authentication refusals;
    the listed VDNs' decisions, read now."""
    decisions = await decision_metrics(reader, settings)
    return Response(generate_latest(REGISTRY) + decisions, media_type=CONTENT_TYPE_LATEST)
