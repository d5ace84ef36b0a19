"""GET /rest/isales/v2/openapi/campaigns/{vdnId}/statistics, answered from Redis.

Order of the checks: the signature (401), the parameters (400), the key's VDN scope (401, as a
bad signature: api/auth.py), flow control (429), then the read: the guarded read of every read
interface (api/interfaces.py).

Consistency: campaigns are read by one Lua script (engine/statistics.py), so a campaign's
counters and its batches' come from one instant; one event only ever touches one campaign, so no
response holds part of an event's effects. On one Redis the script reads the whole VDN at once;
on a Redis Cluster it runs once per campaign, so two campaigns may be read a few microseconds
apart (an event between them shows in the second).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from isales_stats.api.dependencies import ReaderDep
from isales_stats.api.errors import ErrorCode
from isales_stats.api.interfaces import GuardedRead, ReadInterface
from isales_stats.api.parameters import BATCH, CAMPAIGN, StatisticsQuery
from isales_stats.api.responses import (
    BATCH_WITHOUT_CAMPAIGN,
    CAMPAIGN_TOO_LONG,
    MISSING_CONTENT_TYPE,
)
from isales_stats.api.schemas import StatisticsResponse
from isales_stats.core.days import today_in
from isales_stats.core.events import MAX_VDN_ID, MIN_VDN_ID
from isales_stats.core.interface import STATISTICS_PATH
from isales_stats.core.keys import STATISTICS_INTERFACE

router = APIRouter()

INTERFACE = ReadInterface(
    path=STATISTICS_PATH,
    summary="Outbound call statistics of the current day",
    budget=STATISTICS_INTERFACE,
    parameters=(CAMPAIGN, BATCH),
    query=StatisticsQuery,
    # One example per 400 code the statistics interface answers (docs/api.md, "Errors").
    errors=(
        (ErrorCode.WRONG_TYPE, "vdnId must be an integer, got 'abc'"),
        (
            ErrorCode.WRONG_VALUE,
            f"vdnId must be from {MIN_VDN_ID} to {MAX_VDN_ID}, got '{MAX_VDN_ID + 1}'",
        ),
        BATCH_WITHOUT_CAMPAIGN,
        (ErrorCode.TOO_MANY_PARAMETERS, "campaignId is given 2 times; give it at most once"),
        (
            ErrorCode.INVALID_CHARACTERS,
            "campaignId may not hold control characters, '{' or '}', or bytes that are not "
            "UTF-8, got 'a{b'",
        ),
        CAMPAIGN_TOO_LONG,
        MISSING_CONTENT_TYPE,
    ),
    answer="The campaigns asked for, each with its batches (countDetail).",
    response_model=StatisticsResponse,
)


@INTERFACE.route(router)
async def campaign_statistics(
    guarded: Annotated[GuardedRead[StatisticsQuery], Depends(INTERFACE.guard)],
    reader: ReaderDep,
) -> Response:
    """Counters of a VDN's campaigns and their batches: totals and the current day.

    Send ``Content-Type: application/json; charset=UTF-8`` and an ``Authorization`` signature.
    """
    query = guarded.query
    today = today_in(guarded.settings.time_zone_of(query.vdn_id))
    # Written by the reader as JSON, not validated again through StatisticsResponse: see
    # api/schemas.py.
    body = await guarded.read(
        reader.body_read(query.vdn_id, today, query.campaign_id, query.batch_id)
    )
    return Response(body, media_type="application/json")
