"""GET /rest/isales/v2/openapi/campaigns/{vdnId}/statistics, answered from Redis.

Order of the checks: the signature (401), the parameters (400), the key's VDN scope (401, as a
bad signature: api/auth.py), flow control (429), then the read. Only well-formed requests
authenticated for their VDN count toward a caller's flow-control budget.

Consistency: campaigns are read by one Lua script (engine/statistics.py), so a campaign's
counters and its batches' come from one instant; one event only ever touches one campaign, so no
response holds part of an event's effects. On one Redis the script reads the whole VDN at once;
on a Redis Cluster it runs once per campaign, so two campaigns may be read a few microseconds
apart (an event between them shows in the second).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.convertors import Convertor, register_url_convertor

from isales_stats.api.auth import authorize_vdn
from isales_stats.api.dependencies import (
    AdmissionDep,
    CallerDep,
    ReaderDep,
    SettingsDep,
    StatisticsQueryDep,
)
from isales_stats.api.errors import (
    AUTHENTICATION_FAILED_MESSAGE,
    TOO_FREQUENT_MESSAGE,
    UNAVAILABLE_MESSAGE,
    ErrorCode,
    envelope,
)
from isales_stats.api.parameters import openapi_parameters
from isales_stats.api.schemas import ErrorEnvelope, StatisticsResponse
from isales_stats.core.days import today_in
from isales_stats.core.events import MAX_VDN_ID, MIN_VDN_ID
from isales_stats.core.interface import CONTENT_TYPE, STATISTICS_PATH

router = APIRouter(tags=["statistics"])


class AnyPathText(Convertor[str]):
    """Any text, slashes and line breaks included: Starlette's ``path`` stops at a newline."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", AnyPathText())


def _example(code: ErrorCode, description: str) -> dict[str, Any]:
    return {"summary": f"{code.value}: {description}", "value": envelope(code, description)}


_PARAMETER_ERROR_EXAMPLES = {
    code.name.lower(): _example(code, description)
    for code, description in [
        (ErrorCode.WRONG_TYPE, "vdnId must be an integer, got 'abc'"),
        (
            ErrorCode.WRONG_VALUE,
            f"vdnId must be from {MIN_VDN_ID} to {MAX_VDN_ID}, got '{MAX_VDN_ID + 1}'",
        ),
        (ErrorCode.WRONG_COMBINATION, "batchId is given without campaignId: give both or neither"),
        (ErrorCode.TOO_MANY_PARAMETERS, "campaignId is given 2 times; give it at most once"),
        (
            ErrorCode.INVALID_CHARACTERS,
            "campaignId may not hold control characters, '{' or '}', or bytes that are not "
            "UTF-8, got 'a{b'",
        ),
        (ErrorCode.TOO_LONG, "campaignId may be at most 64 characters long, got 65"),
        (
            ErrorCode.PARAMETER_ERROR,
            f"the Content-Type header is missing; send Content-Type: {CONTENT_TYPE}",
        ),
    ]
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until the caller's flow-control window ends.",
        "schema": {"type": "integer", "minimum": 1},
    }
}

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The campaigns asked for, each with its batches (countDetail)."},
    400: {
        "model": ErrorEnvelope,
        "description": "A parameter or the Content-Type header breaks the interface's rules.",
        "content": {"application/json": {"examples": _PARAMETER_ERROR_EXAMPLES}},
    },
    401: {
        "model": ErrorEnvelope,
        "description": "The Authorization signature is missing, malformed, expired or wrong, "
        "or its key is not issued for this VDN (the same answer).",
        "headers": {"WWW-Authenticate": {"description": "auth-v2", "schema": {"type": "string"}}},
        "content": {
            "application/json": {
                "example": envelope(ErrorCode.AUTHENTICATION_FAILED, AUTHENTICATION_FAILED_MESSAGE)
            }
        },
    },
    429: {
        "model": ErrorEnvelope,
        "description": "Flow control: too many requests for this VDN in the five-minute window.",
        "headers": _RETRY_AFTER,
        "content": {
            "application/json": {"example": envelope(ErrorCode.TOO_FREQUENT, TOO_FREQUENT_MESSAGE)}
        },
    },
    503: {
        "model": ErrorEnvelope,
        "description": "Redis is unreachable; try again.",
        "headers": {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        },
        "content": {
            "application/json": {"example": envelope(ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE)}
        },
    },
}


# ``{vdnId:anytext}``: a vdnId holding an encoded '/' or line break, or nothing at all, still
# reaches the checks below and gets the iSales answer (02000006), not a bare 404.
@router.get(
    STATISTICS_PATH.replace("{vdn_id}", "{vdnId:anytext}"),
    response_model=StatisticsResponse,
    responses=RESPONSES,
    summary="Outbound call statistics of the current day",
    openapi_extra={"parameters": openapi_parameters()},
)
async def campaign_statistics(
    request: Request,
    caller: CallerDep,
    query: StatisticsQueryDep,
    admission: AdmissionDep,
    reader: ReaderDep,
    settings: SettingsDep,
) -> Response:
    """Counters of a VDN's campaigns and their batches: totals and the current day.

    Send ``Content-Type: application/json; charset=UTF-8`` and an ``Authorization`` signature.
    """
    authorize_vdn(request, caller, query.vdn_id)
    today = today_in(settings.time_zone_of(query.vdn_id))
    # Replay and flow control ride along the read's first round trip (api/admission.py).
    gate = admission.gate(request, caller, query.vdn_id)
    # Written by the reader as JSON, not validated again through StatisticsResponse: see
    # api/schemas.py.
    body = await reader.read_body(query.vdn_id, today, query.campaign_id, query.batch_id, gate=gate)
    return Response(body, media_type="application/json")
