"""GET /rest/isales/v2/openapi/campaigns/{vdnId}/statistics/stream: the statistics, pushed.

Our extension (docs/api.md, "Push"). A signed GET like the statistics interface, in the same
order of checks: the signature (401), the parameters (400), the key's VDN scope (401), flow
control (429: a subscription counts one request against its own per-VDN budget, "stream"),
then the caps on subscribers (503 for the process, 429 for the key), then the first read (503
when Redis fails). What follows is ``text/event-stream`` (api/push/stream.py).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from isales_stats.api.dependencies import HubDep
from isales_stats.api.errors import ErrorCode
from isales_stats.api.interfaces import GuardedRead, ReadInterface
from isales_stats.api.parameters import CAMPAIGN, StatisticsQuery
from isales_stats.api.push.stream import last_event_id, open_stream
from isales_stats.api.responses import CAMPAIGN_TOO_LONG
from isales_stats.core.interface import EVENT_STREAM_MEDIA_TYPE, STREAM_PATH

router = APIRouter()

INTERFACE = ReadInterface(
    path=STREAM_PATH,
    summary="The statistics of a VDN's campaigns, pushed as they change (Server-Sent Events)",
    # A subscription counts one request against this budget (KeyLayout.flow_control).
    budget="stream",
    # No batchId (events carry a campaign's counters) and no Content-Type (a GET without a
    # body; an EventSource cannot set one).
    parameters=(
        dataclasses.replace(
            CAMPAIGN,
            description="Only this campaign's changes; empty or absent: every campaign of the "
            "VDN. No control characters, '{' or '}'; at most 64.",
        ),
    ),
    query=StatisticsQuery,
    errors=(
        (ErrorCode.WRONG_TYPE, "vdnId must be an integer, got 'abc'"),
        (
            ErrorCode.PARAMETER_ERROR,
            "unknown query parameter 'batchId'; the only parameter is campaignId",
        ),
        (
            ErrorCode.WRONG_VALUE,
            "Last-Event-ID must be an id this stream sent (digits-digits), got 'abc'",
        ),
        CAMPAIGN_TOO_LONG,
    ),
    answer="text/event-stream: `event: snapshot` or `event: change`, each with an `id` and, "
    "as `data`, a campaign's counters (campaignId, changeId, statDate, the eleven counters of "
    "a countDetail entry, snapshot); comment lines as heartbeats.",
    media_types=(EVENT_STREAM_MEDIA_TYPE,),
    content_type=False,
    tags=("push",),
)


@INTERFACE.route(router)
async def statistics_stream(
    guarded: Annotated[GuardedRead[StatisticsQuery], Depends(INTERFACE.guard)],
    hub: HubDep,
) -> Response:
    """Each change of a campaign's counters (totals and today's), as an event; send
    ``Last-Event-ID`` to resume after the last one received, on any API process."""
    resume_from = last_event_id(guarded.request)
    await guarded.admit()
    query = guarded.query
    return await open_stream(
        hub, query.vdn_id, query.campaign_id, guarded.caller.identity, resume_from
    )
