"""The answers other than 200 that every read interface documents, for the OpenAPI document.

The statistics, failcategorystatistics and history routes share their checks (api/auth.py,
api/admission.py, api/parameters.py), so they share these descriptions; each route gives its own
parameter examples, one per code it can answer 400 with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from isales_stats.api.errors import (
    AUTHENTICATION_FAILED_MESSAGE,
    TOO_FREQUENT_MESSAGE,
    UNAVAILABLE_MESSAGE,
    ErrorCode,
    envelope,
)
from isales_stats.api.schemas import ErrorEnvelope

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
