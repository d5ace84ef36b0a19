"""What the read interfaces answer: the iSales success envelope, and the documented errors.

The statistics, failcategorystatistics and history routes share their checks (api/auth.py,
api/admission.py, api/parameters.py), so they share these descriptions; each route gives its own
parameter examples, one per code it can answer 400 with (the two day-range interfaces share
``DAY_RANGE_ERRORS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi.responses import Response

from isales_stats.api.errors import (
    AUTHENTICATION_FAILED_MESSAGE,
    TOO_FREQUENT_MESSAGE,
    UNAVAILABLE_MESSAGE,
    ErrorCode,
    envelope,
)
from isales_stats.api.schemas import SUCCESS_CODE, SUCCESS_MESSAGE, ErrorEnvelope
from isales_stats.core.interface import CONTENT_TYPE

# 400s that several interfaces answer alike, with an example message each.
CAMPAIGN_MISSING = (
    ErrorCode.EMPTY_PARAMETER,
    "campaignId is mandatory: give the campaign whose statistics to read",
)
CAMPAIGN_TOO_LONG = (ErrorCode.TOO_LONG, "campaignId may be at most 64 characters long, got 65")
BATCH_WITHOUT_CAMPAIGN = (
    ErrorCode.WRONG_COMBINATION,
    "batchId is given without campaignId: give both or neither",
)
MISSING_CONTENT_TYPE = (
    ErrorCode.PARAMETER_ERROR,
    f"the Content-Type header is missing; send Content-Type: {CONTENT_TYPE}",
)
# The 400s of failcategorystatistics and of the history, with the requests that get them.
DAY_RANGE_ERRORS = [
    CAMPAIGN_MISSING,
    (
        ErrorCode.WRONG_COMBINATION,
        "startDate is given without endDate: give both or neither (neither: today)",
    ),
    (ErrorCode.CONVERSION_ERROR, "startDate must be a date as yyyy-MM-dd, got '2026-12-1'"),
    (ErrorCode.WRONG_VALUE, "startDate 2026-12-05 is after endDate 2026-12-01"),
    (
        ErrorCode.WRONG_VALUE,
        "startDate 2026-11-01 and endDate 2026-12-05 are 34 days apart; "
        "the interval may not exceed 30 days",
    ),
    (
        ErrorCode.WRONG_VALUE,
        "startDate 2026-10-01 is before the oldest day kept, 2026-10-27 (days are kept 40 days)",
    ),
    (ErrorCode.TOO_MANY_PARAMETERS, "startDate is given 2 times; give it at most once"),
]


def success(data: Any) -> Response:
    """200 with iSales' success envelope around ``data``."""
    body = {
        "resultCode": SUCCESS_CODE,
        "resultDesc": SUCCESS_MESSAGE,
        "returnCode": SUCCESS_CODE,
        "returnDesc": SUCCESS_MESSAGE,
        "data": data,
    }
    return Response(orjson.dumps(body), media_type="application/json")


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until the caller's flow-control window ends.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def error_responses(
    parameter_examples: Sequence[tuple[ErrorCode, str]],
) -> dict[int | str, dict[str, Any]]:
    """400 (with an example per code and description given), 401, 429 and 503."""
    examples = {
        f"{code.name.lower()}_{n}": {
            "summary": f"{code.value}: {description}",
            "value": envelope(code, description),
        }
        for n, (code, description) in enumerate(parameter_examples)
    }
    return {
        400: {
            "model": ErrorEnvelope,
            "description": "A parameter or the Content-Type header breaks the interface's rules.",
            "content": {"application/json": {"examples": examples}},
        },
        401: {
            "model": ErrorEnvelope,
            "description": "The Authorization signature is missing, malformed, expired or wrong, "
            "or its key is not issued for this VDN (the same answer).",
            "headers": {
                "WWW-Authenticate": {"description": "auth-v2", "schema": {"type": "string"}}
            },
            "content": {
                "application/json": {
                    "example": envelope(
                        ErrorCode.AUTHENTICATION_FAILED, AUTHENTICATION_FAILED_MESSAGE
                    )
                }
            },
        },
        429: {
            "model": ErrorEnvelope,
            "description": "Flow control: too many requests for this VDN in the five-minute "
            "window.",
            "headers": _RETRY_AFTER,
            "content": {
                "application/json": {
                    "example": envelope(ErrorCode.TOO_FREQUENT, TOO_FREQUENT_MESSAGE)
                }
            },
        },
        503: {
            "model": ErrorEnvelope,
            "description": "Redis is unreachable; try again.",
            "headers": {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
            },
            "content": {
                "application/json": {
                    "example": envelope(ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE)
                }
            },
        },
    }
