"""The statistics request's parameters: checked by hand, in a fixed order, into iSales codes.

FastAPI's own validation cannot say what iSales says: it answers 422, keeps the last of a
repeated parameter, ignores unknown ones and cannot tell ``campaignId=`` from a value. So the
route declares no parameters of its own; this module checks the raw request and describes the
same parameters to the OpenAPI document, from the same constants.

Checks run in this order and the first failure answers (docs/api.md, section "Errors", lists the
same order): vdnId's type, vdnId's range, unknown query parameters, repeated ones, characters
and length of each value, batchId without campaignId, and last the Content-Type header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from isales_stats.api.errors import ErrorCode, ParameterError
from isales_stats.core.events import MAX_BATCH_LENGTH, MAX_ID_LENGTH, MAX_VDN_ID, MIN_VDN_ID
from isales_stats.core.interface import CONTENT_TYPE, JSON_MEDIA_TYPE
from isales_stats.core.keys import FORBIDDEN_ID_CHARACTER_PATTERN, is_allowed_identifier

MAX_QUERY_LENGTHS = {"campaignId": MAX_ID_LENGTH, "batchId": MAX_BATCH_LENGTH}

# ASCII digits only: int() would also take "٣", "1_000" and " 7 ".
_INTEGER = re.compile(r"-?[0-9]+")
_ECHO_LIMIT = 40


@dataclass(frozen=True, slots=True)
class StatisticsQuery:
    """A valid request: what to read. ``None`` means "all" (an empty value counts as absent)."""

    vdn_id: int
    campaign_id: str | None = None
    batch_id: str | None = None


def parse_statistics_query(
    vdn_text: str, query: Sequence[tuple[str, str]], content_types: Sequence[str]
) -> StatisticsQuery:
    """The request as a ``StatisticsQuery``, or ``ParameterError`` with the iSales code."""
    vdn_id = _vdn_id(vdn_text)
    values = _query_values(query)
    campaign_id = values.get("campaignId") or None
    batch_id = values.get("batchId") or None
    if batch_id is not None and campaign_id is None:
        raise ParameterError(
            ErrorCode.WRONG_COMBINATION, "batchId is given without campaignId: give both or neither"
        )
    _check_content_type(content_types)
    return StatisticsQuery(vdn_id, campaign_id, batch_id)


def is_valid_identifier(value: str) -> bool:
    """The rule engine/events.py applies to ids (no control characters, no hash-tag braces), and
    valid UTF-8: bytes that are not become lone surrogates in ``decode_query`` (core/signing.py),
    which Redis could not be asked about (events cannot hold them: they arrive as UTF-8 JSON)."""
    return is_allowed_identifier(value) and _is_utf8(value)


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _vdn_id(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ParameterError(ErrorCode.WRONG_TYPE, f"vdnId must be an integer, got {_echo(text)}")
    # Compare digits, not int(text): Python refuses int() of more than 4300 digits.
    digits = text.lstrip("-").lstrip("0")
    if (
        text.startswith("-")
        or len(digits) > len(str(MAX_VDN_ID))
        or not (MIN_VDN_ID <= int(digits or "0") <= MAX_VDN_ID)
    ):
        raise ParameterError(
            ErrorCode.WRONG_VALUE,
            f"vdnId must be from {MIN_VDN_ID} to {MAX_VDN_ID}, got {_echo(text)}",
        )
    return int(digits)


def _query_values(query: Sequence[tuple[str, str]]) -> dict[str, str]:
    names = [name for name, _ in query]
    unknown = [name for name in dict.fromkeys(names) if name not in MAX_QUERY_LENGTHS]
    if unknown:
        raise ParameterError(
            ErrorCode.PARAMETER_ERROR,
            f"unknown query parameter {_echo(unknown[0])}; "
            f"the parameters are {' and '.join(MAX_QUERY_LENGTHS)}",
        )
    for name in MAX_QUERY_LENGTHS:
        if names.count(name) > 1:
            raise ParameterError(
                ErrorCode.TOO_MANY_PARAMETERS,
                f"{name} is given {names.count(name)} times; give it at most once",
            )
    values = dict(query)
    for name, max_length in MAX_QUERY_LENGTHS.items():
        value = values.get(name, "")
        if not is_valid_identifier(value):
            raise ParameterError(
                ErrorCode.INVALID_CHARACTERS,
                f"{name} may not hold control characters, '{{' or '}}', or bytes that are "
                f"not UTF-8, got {_echo(value)}",
            )
        if len(value) > max_length:
            raise ParameterError(
                ErrorCode.TOO_LONG,
                f"{name} may be at most {max_length} characters long, got {len(value)}",
            )
    return values


def _check_content_type(content_types: Sequence[str]) -> None:
    if not content_types:
        raise ParameterError(
            ErrorCode.PARAMETER_ERROR,
            f"the Content-Type header is missing; send Content-Type: {CONTENT_TYPE}",
        )
    if len(content_types) > 1 or not _is_json_utf8(content_types[0]):
        raise ParameterError(
            ErrorCode.PARAMETER_ERROR,
            f"the Content-Type header must be {CONTENT_TYPE}, got "
            f"{_echo(', '.join(content_types))}",
        )


def _is_json_utf8(value: str) -> bool:
    """``application/json``, optionally with ``charset=UTF-8``; case and spaces do not matter."""
    media_type, *parameters = value.split(";")
    if media_type.strip().lower() != JSON_MEDIA_TYPE:
        return False
    for parameter in filter(None, (part.strip() for part in parameters)):
        name, _, charset = parameter.partition("=")
        if name.strip().lower() != "charset" or charset.strip().strip('"').lower() != "utf-8":
            return False
    return True


def _echo(value: str) -> str:
    """A caller's value, quoted and shortened for a message (repr escapes what is unprintable)."""
    text = repr(value)
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 3] + "..."


def openapi_parameters() -> list[dict[str, Any]]:
    """The parameters of the statistics operation, for the OpenAPI document."""
    # The id rule's own character class, negated: what the pattern allows the API accepts.
    identifier_pattern = f"^[^{FORBIDDEN_ID_CHARACTER_PATTERN.removeprefix('[')[:-1]}]*$"
    return [
        {
            "name": "vdnId",
            "in": "path",
            "required": True,
            "description": f"The VDN (tenant), an integer from {MIN_VDN_ID} to {MAX_VDN_ID}.",
            "schema": {"type": "integer", "minimum": MIN_VDN_ID, "maximum": MAX_VDN_ID},
            "example": 1,
        },
        {
            "name": "campaignId",
            "in": "query",
            "required": False,
            "description": (
                "Only this campaign, with all its batches; empty or absent: every campaign of "
                "the VDN. No control characters, '{' or '}'; at most "
                f"{MAX_ID_LENGTH}. An unknown campaign gives an empty countDetail."
            ),
            "schema": {"type": "string", "maxLength": MAX_ID_LENGTH, "pattern": identifier_pattern},
            "example": "1001",
        },
        {
            "name": "batchId",
            "in": "query",
            "required": False,
            "description": (
                "Only this batch (customField) in batchDetail; needs campaignId. No control "
                f"characters, '{{' or '}}'; at most {MAX_BATCH_LENGTH}."
            ),
            "schema": {
                "type": "string",
                "maxLength": MAX_BATCH_LENGTH,
                "pattern": identifier_pattern,
            },
        },
    ]
