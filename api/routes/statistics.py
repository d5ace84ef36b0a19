"""GET /rest/isales/v2/openapi/campaigns/{vdnId}/statistics, answered from Redis."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.dependencies import ReaderDep, SettingsDep
from engine.days import today_in

router = APIRouter(tags=["statistics"])


@router.get("/rest/isales/v2/openapi/campaigns/{vdnId}/statistics")
async def campaign_statistics(
    vdnId: int,
    reader: ReaderDep,
    settings: SettingsDep,
    campaignId: str | None = None,
    batchId: str | None = None,
) -> dict[str, Any]:
    """Statistics of a VDN's campaigns and batches: totals and the current day."""
    today = today_in(settings.time_zone_of(vdnId))
    detail = await reader.read_count_detail(vdnId, today, campaignId or None, batchId or None)
    return {"countDetail": detail}
