"""GET /rest/isales/v2/openapi/campaigns/{vdnId}/statistics/stream: the statistics, pushed.

Our extension (docs/api.md, "Push"). A signed GET like the statistics interface, in the same
order of checks: the signature (401), the parameters (400), the key's VDN scope (401), flow
control (429: a subscription counts one request against its own per-VDN budget, "stream"),
then the caps on subscribers (503 for the process, 429 for the key), then the first read (503
when Redis fails). What follows is ``text/event-stream`` (api/push/stream.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from isales_stats.api.auth import authorize_vdn
from isales_stats.api.dependencies import (
    AdmissionDep,
    CallerDep,
    HubDep,
    StreamQueryDep,
)
from isales_stats.api.errors import ErrorCode
from isales_stats.api.parameters import vdn_route
from isales_stats.api.push.stream import last_event_id, open_stream
from isales_stats.api.responses import error_responses
from isales_stats.core.interface import EVENT_STREAM_MEDIA_TYPE, STREAM_PATH

router = APIRouter(tags=["push"])

# The flow-control budget of subscriptions (KeyLayout.flow_control).
STREAM_INTERFACE = "stream"

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "text/event-stream: `event: snapshot` or `event: change`, each with an "
        "`id` and, as `data`, a campaign's counters (campaignId, changeId, statDate, the eleven "
        "counters of a countDetail entry, snapshot); comment lines as heartbeats.",
        "content": {EVENT_STREAM_MEDIA_TYPE: {"schema": {"type": "string"}}},
    },
    **error_responses(
        [
            (ErrorCode.WRONG_TYPE, "vdnId must be an integer, got 'abc'"),
            (
                ErrorCode.PARAMETER_ERROR,
                "unknown query parameter 'batchId'; the only parameter is campaignId",
            ),
            (
                ErrorCode.WRONG_VALUE,
                "Last-Event-ID must be an id this stream sent (digits-digits), got 'abc'",
            ),
            (ErrorCode.TOO_LONG, "campaignId may be at most 64 characters long, got 65"),
        ]
    ),
}


@router.get(
    vdn_route(STREAM_PATH),
    response_class=Response,
    responses=RESPONSES,
    summary="The statistics of a VDN's campaigns, pushed as they change (Server-Sent Events)",
)
async def statistics_stream(
    request: Request,
    caller: CallerDep,
    query: StreamQueryDep,
    admission: AdmissionDep,
    hub: HubDep,
) -> Response:
    """Each change of a campaign's counters (totals and today's), as an event; send
    ``Last-Event-ID`` to resume after the last one received, on any API process."""
    authorize_vdn(request, caller, query.vdn_id)
    resume_from = last_event_id(request)
    gate = admission.gate(request, caller, query.vdn_id, interface=STREAM_INTERFACE)
    await admission.check(gate)
    return await open_stream(hub, query.vdn_id, query.campaign_id, caller.identity, resume_from)
