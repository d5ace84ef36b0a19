"""The iSales error envelope and its codes: every answer of the API other than a 200.

iSales answers errors as ``{"resultCode", "resultDesc", "returnCode", "returnDesc"}``, the
``return*`` pair mirroring ``result*``. The 400 codes are the seed's (``0200001`` has seven
digits there, the others eight). The seed gives no code for 401, 404, 429 or 503: the ones here
name their HTTP status (our decision, listed in docs/api.md, section "Errors").
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class ErrorCode(enum.StrEnum):
    PARAMETER_ERROR = "0200001"  # anything else wrong with the request; resultDesc says what
    EMPTY_PARAMETER = "02000001"  # a mandatory parameter is missing or empty
    INVALID_CHARACTERS = "02000002"
    TOO_LONG = "02000003"
    WRONG_TYPE = "02000006"
    WRONG_VALUE = "02000007"
    CONVERSION_ERROR = "02000008"  # a value that is not what its type spells (a date)
    WRONG_COMBINATION = "02000009"
    TOO_MANY_PARAMETERS = "02000011"
    AUTHENTICATION_FAILED = "02000401"
    NOT_FOUND = "02000404"  # only / answers it (api/routes/live.py): nothing is there
    TOO_FREQUENT = "02000429"
    INTERNAL_ERROR = "02000500"
    UNAVAILABLE = "02000503"


# The seed's own words for flow control.
TOO_FREQUENT_MESSAGE = "Do not perform this operation frequently. Please try again later."
# One message for every authentication failure: which part was wrong is for the logs only.
AUTHENTICATION_FAILED_MESSAGE = (
    "Authentication failed: the Authorization header is missing, malformed, expired or does not "
    "match the request."
)
UNAVAILABLE_MESSAGE = "The statistics store is unavailable. Please try again later."
INTERNAL_ERROR_MESSAGE = "Internal error."


class ApiError(Exception):
    """An answer other than 200, raised anywhere in a request and written by ``answer_error``."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        description: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.headers = dict(headers or {})


class ParameterError(ApiError):
    """HTTP 400: the request's parameters break the interface's rules."""

    def __init__(self, code: ErrorCode, description: str) -> None:
        super().__init__(400, code, description)


def envelope(code: ErrorCode, description: str) -> dict[str, str]:
    return {
        "resultCode": code.value,
        "resultDesc": description,
        "returnCode": code.value,
        "returnDesc": description,
    }


def error_response(
    status: int, code: ErrorCode, description: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(envelope(code, description)),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


async def answer_api_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, ApiError):  # registered for ApiError only: Starlette's typing
        raise error
    return error_response(error.status, error.code, error.description, error.headers)


async def answer_redis_error(request: Request, error: Exception) -> Response:
    # An outage is not the caller's fault and not a bug: 503, so clients and probes retry.
    log.warning("Redis unavailable while serving %s: %r", request.url.path, error)
    return error_response(503, ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE, {"Retry-After": "1"})


async def answer_unexpected_error(request: Request, error: Exception) -> Response:
    # Starlette still logs the traceback; the caller gets the envelope and nothing more.
    return error_response(500, ErrorCode.INTERNAL_ERROR, INTERNAL_ERROR_MESSAGE)


ExceptionHandler = Callable[[Request, Any], Coroutine[Any, Any, Response]]
EXCEPTION_HANDLERS: dict[int | type[Exception], ExceptionHandler] = {
    ApiError: answer_api_error,
    RedisError: answer_redis_error,
    Exception: answer_unexpected_error,
}
