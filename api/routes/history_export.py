"""GET /rest/isales/v2/openapi/campaigns/{vdnId}/statistics/history/export: history as a file.

Our extension (docs/api.md, "Exports"): the numbers of the history interface, a row per
campaign and day (or hour), as CSV or NDJSON (api/exports.py), for every campaign of the VDN or
one (or one batch of it), over any range the retention keeps: where the history answers at most
31 days of one campaign, this streams them all, a part at a time (engine/exports.py), in the
memory of one part. The history's parameters, ``campaignId`` optional, and ``format``; the same
checks, with a flow-control budget of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from isales_stats.api.dependencies import one_reader
from isales_stats.api.errors import ErrorCode
from isales_stats.api.exports import (
    FORMAT,
    FORMAT_ERROR,
    MEDIA_TYPES,
    Row,
    export_response,
    file_name,
    negotiated_format,
)
from isales_stats.api.interfaces import GuardedRead, ReadInterface
from isales_stats.api.parameters import (
    BATCH,
    CAMPAIGN,
    END_DATE,
    INTERVAL,
    START_DATE,
    Interval,
    requested_days,
)
from isales_stats.api.responses import BATCH_WITHOUT_CAMPAIGN, DAY_RANGE_ERRORS
from isales_stats.api.routes.history import (
    DAY_POINT_FIELDS,
    HOUR_POINT_FIELDS,
    day_point,
    hour_points,
)
from isales_stats.core.days import today_in
from isales_stats.core.events import MAX_ID_LENGTH
from isales_stats.core.interface import HISTORY_EXPORT_PATH
from isales_stats.engine.exports import CampaignDays, ExportReader

router = APIRouter()

# A row: the campaign, the batch (null: the campaign's own counters), then a history point.
SCOPE_COLUMNS = ("campaignId", "batchId")


@dataclass(frozen=True, slots=True)
class HistoryExportQuery:
    vdn_id: int
    campaign_id: str | None = None
    batch_id: str | None = None
    start: date | None = None
    end: date | None = None
    interval: Interval = "day"
    format: str | None = None


# The history's dates, as far apart as the retention allows (requested_days checks it).
RETAINED_START, RETAINED_END = (
    dataclasses.replace(
        parameter,
        max_days=None,
        description=f"The {which} day of the range, yyyy-MM-dd in the VDN's zone; give both dates "
        "or neither (neither: today). Any range within the retention "
        "(ISALES_DAILY_RETENTION_DAYS), none after today.",
    )
    for parameter, which in ((START_DATE, "first"), (END_DATE, "last"))
)
INTERFACE = ReadInterface(
    path=HISTORY_EXPORT_PATH,
    summary="History by day or by hour as a CSV or NDJSON file, every campaign or one, any "
    "range the retention keeps (an extension)",
    budget="history-export",
    parameters=(
        dataclasses.replace(
            CAMPAIGN,
            description="Only this campaign; empty or absent: every live campaign of the VDN. No "
            f"control characters, '{{' or '}}'; at most {MAX_ID_LENGTH}. An unknown campaign "
            "has every day with nothing counted.",
        ),
        BATCH,
        RETAINED_START,
        RETAINED_END,
        INTERVAL,
        FORMAT,
    ),
    query=HistoryExportQuery,
    errors=(
        *(error for error in DAY_RANGE_ERRORS if "30 days" not in error[1]),
        (ErrorCode.WRONG_VALUE, "interval must be day or hour, got 'week'"),
        FORMAT_ERROR,
        BATCH_WITHOUT_CAMPAIGN,
    ),
    answer="A file (Content-Disposition: attachment): each campaign's days (or hours), the "
    "campaigns in campaignId order; columns campaignId, batchId (empty unless one was asked "
    "for), then the members of the history's points. Cut short (no end of the chunked body) "
    "when it fails midway.",
    media_types=tuple(MEDIA_TYPES.values()),
)


@INTERFACE.route(router)
async def history_export(
    guarded: Annotated[GuardedRead[HistoryExportQuery], Depends(INTERFACE.guard)],
    reader: Annotated[ExportReader, Depends(one_reader(ExportReader))],
) -> Response:
    """The history of a VDN's campaigns (or of one, or one batch) per day or per hour from
    startDate to endDate (today when neither is given), as a file, streamed."""
    query, settings = guarded.query, guarded.settings
    export_format = negotiated_format(query.format, guarded.request.headers.getlist("accept"))
    zone = settings.time_zone_of(query.vdn_id)
    days = requested_days(query, settings)
    hourly = query.interval == "hour"
    campaigns = await guarded.read(reader.campaigns_read(query.vdn_id, query.campaign_id))
    parts = reader.history_parts(
        query.vdn_id, campaigns, days, today_in(zone), query.batch_id, hours=hourly
    )
    columns = (*SCOPE_COLUMNS, *(HOUR_POINT_FIELDS if hourly else DAY_POINT_FIELDS))
    name = file_name(
        [
            "history",
            query.vdn_id,
            query.campaign_id,
            query.batch_id,
            query.interval,
            days[0].isoformat(),
            days[-1].isoformat(),
        ],
        export_format,
    )
    rows = _rows(parts, query.batch_id, zone, hourly)
    return await export_response(INTERFACE.budget, rows, columns, export_format, name)


async def _rows(
    parts: AsyncIterator[list[CampaignDays]], batch_id: str | None, zone: tzinfo, hourly: bool
) -> AsyncIterator[list[Row]]:
    """The history's points, each with its campaign and batch, in the order read."""
    async for part in parts:
        rows: list[Row] = []
        for campaign_id, days in part:
            scope = {"campaignId": campaign_id, "batchId": batch_id}
            for day in days:
                points = hour_points(day, zone) if hourly else [day_point(day)]
                rows += ({**scope, **point} for point in points)
        yield rows
