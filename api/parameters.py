"""The requests' parameters: described once, checked by hand in a fixed order, into iSales codes.

FastAPI's own validation cannot say what iSales says: it answers 422, keeps the last of a
repeated parameter, ignores unknown ones and cannot tell ``campaignId=`` from a value. So a read
interface's route declares no parameters of its own: its description (api/interfaces.py) lists
``Parameter`` values of the kinds below, and from them follow both the checks of the raw request
(``ReadInterface.parse``) and the parameters of the OpenAPI document.

Checks run in this order and the first failure answers (docs/api.md, section "Errors", lists the
same order): vdnId's type, vdnId's range, unknown query parameters, repeated ones, characters
and length of each value (in the order the interface lists its parameters), then a mandatory
parameter missing, one given without the one it needs (batchId without campaignId), the date
range (a date without the other, a date that is none, a range the wrong way round or too long),
each remaining value's own rule (an interval word, a number of minutes), and last the
Content-Type header. Whether a range's days are still kept is checked by the route, which knows
the VDN's today.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal, Protocol

from starlette.convertors import Convertor, register_url_convertor

from isales_stats.api.errors import ErrorCode, ParameterError
from isales_stats.core.days import oldest_retained_day, today_in
from isales_stats.core.events import MAX_BATCH_LENGTH, MAX_ID_LENGTH, MAX_VDN_ID, MIN_VDN_ID
from isales_stats.core.interface import CONTENT_TYPE, JSON_MEDIA_TYPE
from isales_stats.core.keys import FORBIDDEN_ID_CHARACTER_PATTERN, is_allowed_identifier
from isales_stats.core.settings import Settings

DATE_LENGTH = len("yyyy-MM-dd")
# iSales: "the interval between the end time and start time cannot exceed 30 days".
MAX_RANGE_DAYS = 30
Interval = Literal["day", "hour"]
INTERVALS: tuple[Interval, ...] = ("day", "hour")
# The id rule's own character class, negated: what the pattern allows the API accepts.
IDENTIFIER_PATTERN = f"^[^{FORBIDDEN_ID_CHARACTER_PATTERN.removeprefix('[')[:-1]}]*$"
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


# The path parameter every read interface has, for the OpenAPI document.
VDN_PARAMETER: dict[str, Any] = {
    "name": "vdnId",
    "in": "path",
    "required": True,
    "description": f"The VDN (tenant), an integer from {MIN_VDN_ID} to {MAX_VDN_ID}.",
    "schema": {"type": "integer", "minimum": MIN_VDN_ID, "maximum": MAX_VDN_ID},
    "example": 1,
}


@dataclass(frozen=True)
class Parameter:
    """A query parameter: an id (campaignId, batchId) unless a subclass says otherwise.

    ``attribute`` is the field of the interface's query object that its value fills; an empty
    value counts as absent (``None``). ``max_length`` is checked with the characters, before
    any rule of the interface; ``mandatory`` answers 02000001 when it is absent, ``needs``
    02000009 when it comes without that other parameter. ``description`` and ``example`` are
    the OpenAPI document's.
    """

    name: str
    attribute: str
    max_length: int
    description: str
    mandatory: bool = False
    needs: str | None = None
    example: str | None = None
    # What a caller gives with it, for the message of a mandatory parameter left out.
    meaning: str = ""

    def value(self, text: str) -> Any:
        """The query's value of ``text`` (its characters and length already checked)."""
        return text or None

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "maxLength": self.max_length, "pattern": IDENTIFIER_PATTERN}

    def openapi(self) -> dict[str, Any]:
        entry = {
            "name": self.name,
            "in": "query",
            "required": self.mandatory,
            "description": self.description,
            "schema": self.schema(),
        }
        if self.example is not None:
            entry["example"] = self.example
        return entry


@dataclass(frozen=True)
class RangeDate(Parameter):
    """startDate or endDate, yyyy-MM-dd: checked together (``date_range``), both or neither.
    ``max_days``: how far apart they may be (None: as far as the retention, which the route
    checks: the exports)."""

    max_days: int | None = MAX_RANGE_DAYS

    def schema(self) -> dict[str, Any]:
        # A pattern, not "format": "date": an empty value counts as absent (as the statistics
        # interface's parameters do), and a date format forbids it.
        return {
            "type": "string",
            "pattern": "^([0-9]{4}-[0-9]{2}-[0-9]{2})?$",
            "maxLength": self.max_length,
        }


@dataclass(frozen=True)
class Word(Parameter):
    """One of ``choices`` (02000007 otherwise); ``default`` when empty or absent."""

    choices: tuple[str, ...] = ()
    default: str = ""

    def value(self, text: str) -> Any:
        word = text or self.default
        if word not in self.choices:
            *others, last = self.choices
            allowed = f"{', '.join(others)} or {last}" if others else last
            raise ParameterError(
                ErrorCode.WRONG_VALUE, f"{self.name} must be {allowed}, got {_echo(word)}"
            )
        return word

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": [*self.choices, ""]}


@dataclass(frozen=True)
class WholeNumber(Parameter):
    """An integer from ``minimum`` to ``maximum``, as vdnId is checked (02000006 when it is not
    an integer, 02000007 out of range); ``default`` when empty or absent."""

    minimum: int = 0
    maximum: int = 0
    default: int = 0

    def value(self, text: str) -> Any:
        return (
            _integer_within(self.name, text, self.minimum, self.maximum) if text else self.default
        )

    def schema(self) -> dict[str, Any]:
        return {
            "type": "integer",
            "minimum": self.minimum,
            "maximum": self.maximum,
            "default": self.default,
        }


# The parameters the interfaces share (an interface may take one and replace its description).
CAMPAIGN = Parameter(
    "campaignId",
    "campaign_id",
    MAX_ID_LENGTH,
    "Only this campaign, with all its batches; empty or absent: every campaign of the VDN. No "
    f"control characters, '{{' or '}}'; at most {MAX_ID_LENGTH}. An unknown campaign gives an "
    "empty countDetail.",
    example="1001",
)
MANDATORY_CAMPAIGN = Parameter(
    "campaignId",
    "campaign_id",
    MAX_ID_LENGTH,
    "The campaign (mandatory). No control characters, '{' or '}'; at most "
    f"{MAX_ID_LENGTH}. An unknown campaign answers every day with nothing counted.",
    mandatory=True,
    example="1001",
    meaning="the campaign whose statistics to read",
)
BATCH = Parameter(
    "batchId",
    "batch_id",
    MAX_BATCH_LENGTH,
    "Only this batch (customField) in batchDetail; needs campaignId. No control characters, "
    f"'{{' or '}}'; at most {MAX_BATCH_LENGTH}.",
    needs="campaignId",
)
START_DATE, END_DATE = (
    RangeDate(
        name,
        attribute,
        DATE_LENGTH,
        f"The {which} day of the range, yyyy-MM-dd in the VDN's zone; give both dates or neither "
        f"(neither: today). At most {MAX_RANGE_DAYS} days between them, none before the oldest "
        "day kept (ISALES_DAILY_RETENTION_DAYS).",
        example="2026-12-01",
    )
    for name, attribute, which in (("startDate", "start", "first"), ("endDate", "end", "last"))
)
INTERVAL = Word(
    "interval",
    "interval",
    # Room for any word, so that "minute" is told the intervals, not a length.
    16,
    "day (the default, also when empty): one entry per day; hour: one per hour of each day.",
    choices=INTERVALS,
    default="day",
)


def check_request(
    parameters: Sequence[Parameter],
    vdn_text: str,
    query: Sequence[tuple[str, str]],
    content_types: Sequence[str] | None,
) -> tuple[int, dict[str, Any]]:
    """The VDN and the query's values by ``attribute``, checked in the order of the module's
    docstring; ``ParameterError`` with the iSales code of the first check that fails.
    ``content_types`` None: the interface takes no Content-Type (a push subscription)."""
    vdn_id = _integer_within("vdnId", vdn_text, MIN_VDN_ID, MAX_VDN_ID)
    values = _query_values(
        query, {parameter.name: parameter.max_length for parameter in parameters}
    )
    for parameter in parameters:
        if parameter.mandatory and not values.get(parameter.name):
            raise ParameterError(
                ErrorCode.EMPTY_PARAMETER,
                f"{parameter.name} is mandatory: give {parameter.meaning}",
            )
    for parameter in parameters:
        if parameter.needs and values.get(parameter.name) and not values.get(parameter.needs):
            raise ParameterError(
                ErrorCode.WRONG_COMBINATION,
                f"{parameter.name} is given without {parameter.needs}: give both or neither",
            )
    fields: dict[str, Any] = {}
    dates = [parameter for parameter in parameters if isinstance(parameter, RangeDate)]
    if dates:
        first, last = dates
        fields[first.attribute], fields[last.attribute] = _date_range(values, first, last)
    for parameter in parameters:
        if not isinstance(parameter, RangeDate):
            fields[parameter.attribute] = parameter.value(values.get(parameter.name) or "")
    if content_types is not None:
        _check_content_type(content_types)
    return vdn_id, fields


class DatedQuery(Protocol):
    """What ``requested_days`` reads of a query: its VDN and its range (None: today)."""

    @property
    def vdn_id(self) -> int: ...
    @property
    def start(self) -> date | None: ...
    @property
    def end(self) -> date | None: ...


def requested_days(query: DatedQuery, settings: Settings) -> list[date]:
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


def _date_range(
    values: Mapping[str, str], first: RangeDate, last: RangeDate
) -> tuple[date | None, date | None]:
    """The two dates: both or neither, real dates, in order, at most 30 days apart."""
    start_text, end_text = values.get(first.name) or "", values.get(last.name) or ""
    if bool(start_text) != bool(end_text):
        given, missing = (first.name, last.name) if start_text else (last.name, first.name)
        raise ParameterError(
            ErrorCode.WRONG_COMBINATION,
            f"{given} is given without {missing}: give both or neither (neither: today)",
        )
    if not start_text:
        return None, None
    start, end = _date(first.name, start_text), _date(last.name, end_text)
    if start > end:
        raise ParameterError(
            ErrorCode.WRONG_VALUE, f"{first.name} {start} is after {last.name} {end}"
        )
    if first.max_days is not None and (end - start).days > first.max_days:
        raise ParameterError(
            ErrorCode.WRONG_VALUE,
            f"{first.name} {start} and {last.name} {end} are {(end - start).days} days apart; "
            f"the interval may not exceed {first.max_days} days",
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


def _integer_within(name: str, text: str, minimum: int, maximum: int) -> int:
    if not _INTEGER.fullmatch(text):
        raise ParameterError(ErrorCode.WRONG_TYPE, f"{name} must be an integer, got {_echo(text)}")
    # Compare digits, not int(text): Python refuses int() of more than 4300 digits.
    digits = text.lstrip("-").lstrip("0")
    if (
        text.startswith("-")
        or len(digits) > len(str(maximum))
        or not (minimum <= int(digits or "0") <= maximum)
    ):
        raise ParameterError(
            ErrorCode.WRONG_VALUE,
            f"{name} must be from {minimum} to {maximum}, got {_echo(text)}",
        )
    return int(digits or "0")


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
