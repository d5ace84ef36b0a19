"""The requests' parameters: checked by hand, in a fixed order, into iSales codes.

FastAPI's own validation cannot say what iSales says: it answers 422, keeps the last of a
repeated parameter, ignores unknown ones and cannot tell ``campaignId=`` from a value. So the
route declares no parameters of its own; this module checks the raw request and describes the
same parameters to the OpenAPI document, from the same constants.

Checks run in this order and the first failure answers (docs/api.md, section "Errors", lists the
same order): vdnId's type, vdnId's range, unknown query parameters, repeated ones, characters
and length of each value, then what each interface adds (batchId without campaignId; a missing
campaignId, a date without the other, a date that is none, a range the wrong way round or too
long, an unknown interval), and last the Content-Type header. Whether a range's days are still
kept is checked by the route, which knows the VDN's today.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from starlette.convertors import Convertor, register_url_convertor

from isales_stats.api.errors import ErrorCode, ParameterError
from isales_stats.core.days import oldest_retained_day, today_in
from isales_stats.core.events import MAX_BATCH_LENGTH, MAX_ID_LENGTH, MAX_VDN_ID, MIN_VDN_ID
from isales_stats.core.interface import CONTENT_TYPE, JSON_MEDIA_TYPE
from isales_stats.core.keys import FORBIDDEN_ID_CHARACTER_PATTERN, is_allowed_identifier
from isales_stats.core.settings import Settings

MAX_QUERY_LENGTHS = {"campaignId": MAX_ID_LENGTH, "batchId": MAX_BATCH_LENGTH}
DATE_LENGTH = len("yyyy-MM-dd")
STREAM_LENGTHS = {"campaignId": MAX_ID_LENGTH}
FAIL_CATEGORY_LENGTHS = {
    "campaignId": MAX_ID_LENGTH,
    "startDate": DATE_LENGTH,
    "endDate": DATE_LENGTH,
}
# interval: room for any word, so that "minute" is told the intervals, not a length.
HISTORY_LENGTHS = {**MAX_QUERY_LENGTHS, "startDate": DATE_LENGTH, "endDate": DATE_LENGTH,
                   "interval": 16}  # fmt: skip
# iSales: "the interval between the end time and start time cannot exceed 30 days".
MAX_RANGE_DAYS = 30
Interval = Literal["day", "hour"]
INTERVALS: tuple[Interval, ...] = ("day", "hour")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# ASCII digits only: int() would also take "٣", "1_000" and " 7 ".
_INTEGER = re.compile(r"-?[0-9]+")
_ECHO_LIMIT = 40


class AnyPathText(Convertor[str]):
    """Any text, slashes and line breaks included: Starlette's ``path`` stops at a newline."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", AnyPathText())


def vdn_route(path_template: str) -> str:
    """The route of an interface path (core/interface.py, ``{vdn_id}``) with ``{vdnId:anytext}``:
    a vdnId holding an encoded '/' or line break, or nothing at all, still reaches the checks
    below and gets the iSales answer (02000006), not a bare 404."""
    return path_template.replace("{vdn_id}", "{vdnId:anytext}")


@dataclass(frozen=True, slots=True)
class StatisticsQuery:
    """A valid request: what to read. ``None`` means "all" (an empty value counts as absent)."""

    vdn_id: int
    campaign_id: str | None = None
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class DayRangeQuery:
    """A valid failcategorystatistics or history request. No dates: the VDN's today."""

    vdn_id: int
    campaign_id: str
    start: date | None = None
    end: date | None = None
    batch_id: str | None = None
    interval: Interval = "day"


def parse_statistics_query(
    vdn_text: str, query: Sequence[tuple[str, str]], content_types: Sequence[str]
) -> StatisticsQuery:
    """The request as a ``StatisticsQuery``, or ``ParameterError`` with the iSales code."""
    vdn_id = _vdn_id(vdn_text)
    values = _query_values(query, MAX_QUERY_LENGTHS)
    campaign_id = values.get("campaignId") or None
    batch_id = values.get("batchId") or None
    if batch_id is not None and campaign_id is None:
        raise ParameterError(
            ErrorCode.WRONG_COMBINATION, "batchId is given without campaignId: give both or neither"
        )
    _check_content_type(content_types)
    return StatisticsQuery(vdn_id, campaign_id, batch_id)


def parse_stream_query(vdn_text: str, query: Sequence[tuple[str, str]]) -> StatisticsQuery:
    """A push subscription (api/routes/stream.py): a VDN, or one campaign of it. No batchId
    (events carry a campaign's counters) and no Content-Type (a GET without a body; an
    EventSource cannot set one)."""
    vdn_id = _vdn_id(vdn_text)
    values = _query_values(query, STREAM_LENGTHS)
    return StatisticsQuery(vdn_id, values.get("campaignId") or None)


def parse_fail_category_query(
    vdn_text: str, query: Sequence[tuple[str, str]], content_types: Sequence[str]
) -> DayRangeQuery:
    """A failcategorystatistics request as a ``DayRangeQuery``, or ``ParameterError``."""
    vdn_id = _vdn_id(vdn_text)
    values = _query_values(query, FAIL_CATEGORY_LENGTHS)
    campaign_id = _mandatory_campaign(values)
    start, end = _date_range(values)
    _check_content_type(content_types)
    return DayRangeQuery(vdn_id, campaign_id, start, end)


def parse_history_query(
    vdn_text: str, query: Sequence[tuple[str, str]], content_types: Sequence[str]
) -> DayRangeQuery:
    """A statistics history request as a ``DayRangeQuery``, or ``ParameterError``."""
    vdn_id = _vdn_id(vdn_text)
    values = _query_values(query, HISTORY_LENGTHS)
    campaign_id = _mandatory_campaign(values)
    start, end = _date_range(values)
    interval = values.get("interval") or "day"
    if interval not in INTERVALS:
        raise ParameterError(
            ErrorCode.WRONG_VALUE, f"interval must be day or hour, got {_echo(interval)}"
        )
    batch_id = values.get("batchId") or None
    _check_content_type(content_types)
    return DayRangeQuery(
        vdn_id, campaign_id, start, end, batch_id, "hour" if interval == "hour" else "day"
    )


def requested_days(query: DayRangeQuery, settings: Settings) -> list[date]:
    """The days of the request, ascending: its range, or today in the VDN's zone. A range that
    starts before the oldest day kept (``ISALES_DAILY_RETENTION_DAYS``) is refused, as its
    first days could only be answered with zeros that are not true; so is one that ends after
    today, whose days have no counters and no end yet."""
    zone = settings.time_zone_of(query.vdn_id)
    today = today_in(zone)
    start, end = query.start, query.end
    if start is None or end is None:
        start = end = today
    if end > today:
        raise ParameterError(
            ErrorCode.WRONG_VALUE, f"endDate {end} is after today, {today}, in the VDN's zone"
        )
    oldest = oldest_retained_day(zone, settings.daily_retention_days)
    if start < oldest:
        raise ParameterError(
            ErrorCode.WRONG_VALUE,
            f"startDate {start} is before the oldest day kept, {oldest} (days are kept "
            f"{settings.daily_retention_days} days)",
        )
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _mandatory_campaign(values: Mapping[str, str]) -> str:
    campaign_id = values.get("campaignId")
    if not campaign_id:
        raise ParameterError(
            ErrorCode.EMPTY_PARAMETER,
            "campaignId is mandatory: give the campaign whose statistics to read",
        )
    return campaign_id


def _date_range(values: Mapping[str, str]) -> tuple[date | None, date | None]:
    """startDate and endDate: both or neither, real dates, in order, at most 30 days apart."""
    start_text, end_text = values.get("startDate") or "", values.get("endDate") or ""
    if bool(start_text) != bool(end_text):
        given, missing = ("startDate", "endDate") if start_text else ("endDate", "startDate")
        raise ParameterError(
            ErrorCode.WRONG_COMBINATION,
            f"{given} is given without {missing}: give both or neither (neither: today)",
        )
    if not start_text:
        return None, None
    start, end = _date("startDate", start_text), _date("endDate", end_text)
    if start > end:
        raise ParameterError(ErrorCode.WRONG_VALUE, f"startDate {start} is after endDate {end}")
    if (end - start).days > MAX_RANGE_DAYS:
        raise ParameterError(
            ErrorCode.WRONG_VALUE,
            f"startDate {start} and endDate {end} are {(end - start).days} days apart; "
            f"the interval may not exceed {MAX_RANGE_DAYS} days",
        )
    return start, end


def _date(name: str, text: str) -> date:
    try:
        if _DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise ParameterError(
        ErrorCode.CONVERSION_ERROR, f"{name} must be a date as yyyy-MM-dd, got {_echo(text)}"
    )


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


def _query_values(query: Sequence[tuple[str, str]], lengths: Mapping[str, int]) -> dict[str, str]:
    """The query's values, each given at most once, of the names in ``lengths`` (each at most
    that long, and without what ids may not hold)."""
    names = [name for name, _ in query]
    unknown = [name for name in dict.fromkeys(names) if name not in lengths]
    if unknown:
        *others, last = lengths
        known = (
            f"the parameters are {', '.join(others)} and {last}"
            if others
            else (f"the only parameter is {last}")
        )
        raise ParameterError(
            ErrorCode.PARAMETER_ERROR, f"unknown query parameter {_echo(unknown[0])}; {known}"
        )
    for name in lengths:
        if names.count(name) > 1:
            raise ParameterError(
                ErrorCode.TOO_MANY_PARAMETERS,
                f"{name} is given {names.count(name)} times; give it at most once",
            )
    values = dict(query)
    for name, max_length in lengths.items():
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


def openapi_day_range_parameters(history: bool) -> list[dict[str, Any]]:
    """The parameters of failcategorystatistics, or of the history (``history``)."""
    vdn, campaign, batch = openapi_parameters()
    campaign = {
        **campaign,
        "required": True,
        "description": (
            "The campaign (mandatory). No control characters, '{' or '}'; at most "
            f"{MAX_ID_LENGTH}. An unknown campaign answers every day with nothing counted."
        ),
    }
    dates = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": (
                f"The {which} day of the range, yyyy-MM-dd in the VDN's zone; give both dates or "
                f"neither (neither: today). At most {MAX_RANGE_DAYS} days between them, none "
                "before the oldest day kept (ISALES_DAILY_RETENTION_DAYS)."
            ),
            # A pattern, not "format": "date": an empty value counts as absent (as the
            # statistics interface's parameters do), and a date format forbids it.
            "schema": {
                "type": "string",
                "pattern": "^([0-9]{4}-[0-9]{2}-[0-9]{2})?$",
                "maxLength": DATE_LENGTH,
            },
            "example": "2026-12-01",
        }
        for name, which in (("startDate", "first"), ("endDate", "last"))
    ]
    if not history:
        return [vdn, campaign, *dates]
    interval = {
        "name": "interval",
        "in": "query",
        "required": False,
        "description": "day (the default, also when empty): one entry per day; hour: one per "
        "hour of each day.",
        "schema": {"type": "string", "enum": [*INTERVALS, ""]},
    }
    return [vdn, campaign, batch, *dates, interval]
