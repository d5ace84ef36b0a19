"""GET /rest/isales/v2/openapi/campaigns/{vdnId}/statistics/export: the statistics as a file.

Our extension (docs/api.md, "Exports"): the numbers of the statistics interface, a row per
campaign and then one per batch of it, as CSV or NDJSON (api/exports.py), streamed a part of
the campaigns at a time (engine/exports.py) so that a VDN of any size costs the same memory.
The same parameters as the statistics interface, and ``format``; the same checks, with a
flow-control budget of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
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
from isales_stats.api.parameters import BATCH, CAMPAIGN
from isales_stats.api.responses import (
    BATCH_WITHOUT_CAMPAIGN,
    CAMPAIGN_TOO_LONG,
    MISSING_CONTENT_TYPE,
)
from isales_stats.core.days import today_in
from isales_stats.core.interface import STATISTICS_EXPORT_PATH
from isales_stats.core.keys import RESPONSE_COUNTERS
from isales_stats.engine.exports import CountDetail, ExportReader

router = APIRouter()

# A row: the campaign, the batch (null on the campaign's own row) and the eleven counters.
COLUMNS = ("campaignId", "batchId", *RESPONSE_COUNTERS)


@dataclass(frozen=True, slots=True)
class StatisticsExportQuery:
    vdn_id: int
    campaign_id: str | None = None
    batch_id: str | None = None
    format: str | None = None


INTERFACE = ReadInterface(
    path=STATISTICS_EXPORT_PATH,
    summary="The statistics as a CSV or NDJSON file, a row per campaign and per batch "
    "(an extension)",
    budget="statistics-export",
    parameters=(CAMPAIGN, BATCH, FORMAT),
    query=StatisticsExportQuery,
    errors=(
        FORMAT_ERROR,
        BATCH_WITHOUT_CAMPAIGN,
        (
            ErrorCode.PARAMETER_ERROR,
            "unknown query parameter 'startDate'; the parameters are campaignId, batchId and "
            "format",
        ),
        CAMPAIGN_TOO_LONG,
        MISSING_CONTENT_TYPE,
    ),
    answer="A file (Content-Disposition: attachment): each campaign's row, then its batches' "
    "rows; columns campaignId, batchId (empty on a campaign's row) and the eleven counters of "
    "the statistics interface. Cut short (no end of the chunked body) when it fails midway.",
    media_types=tuple(MEDIA_TYPES.values()),
)


@INTERFACE.route(router)
async def statistics_export(
    guarded: Annotated[GuardedRead[StatisticsExportQuery], Depends(INTERFACE.guard)],
    reader: Annotated[ExportReader, Depends(one_reader(ExportReader))],
) -> Response:
    """The statistics of a VDN's campaigns (or of one, and one batch) as a file, streamed."""
    query = guarded.query
    export_format = negotiated_format(query.format, guarded.request.headers.getlist("accept"))
    # One day for the whole file, even if it is still being written at midnight.
    today = today_in(guarded.settings.time_zone_of(query.vdn_id))
    campaigns = await guarded.read(reader.campaigns_read(query.vdn_id, query.campaign_id))
    parts = reader.statistics_parts(query.vdn_id, today, campaigns, query.batch_id)
    name = file_name(
        ["statistics", query.vdn_id, query.campaign_id, query.batch_id, today.isoformat()],
        export_format,
    )
    return await export_response(INTERFACE.budget, _rows(parts), COLUMNS, export_format, name)


async def _rows(parts: AsyncIterator[CountDetail]) -> AsyncIterator[list[Row]]:
    """countDetail entries as rows: a campaign's own, then its batches', in the answer's
    order."""
    async for detail in parts:
        rows: list[Row] = []
        for entry in detail:
            batches = entry.pop("batchDetail")
            campaign_id = entry.pop("campaignId")
            rows.append({"campaignId": campaign_id, "batchId": None, **entry})
            rows += ({"campaignId": campaign_id, **batch} for batch in batches)
        yield rows
