"""The call-event contract (version 1): decoding and validating what arrives on Kafka.

The JSON Schema in ``engine/call-event.schema.json`` states the same contract for publishers;
``tests/test_events.py`` checks that the schema and this decoder agree. Decoding is written by
hand rather than with a schema validator because it runs once per event on the hot path.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from isales_stats.core.keys import is_allowed_identifier

CONTRACT_VERSION = 1
# A VDN is an iSales tenant, numbered 1..9999: events, callbacks and the API's paths all hold
# vdnId to this range (the JSON Schema states it for publishers).
MIN_VDN_ID, MAX_VDN_ID = 1, 9999
MAX_ID_LENGTH = 64
MAX_BATCH_LENGTH = 200  # iSales' customField
CONNECTED = 6
FAILED = 5
# The headers of a dead letter, beside the message as it came (docs/events.md): what the worker
# writes and `isales-stats dead-letters` reads.
DEAD_LETTER_REASON = "x-dead-letter-reason"
DEAD_LETTER_CATEGORY = "x-dead-letter-category"
SOURCE_TOPIC = "x-source-topic"
SOURCE_PARTITION = "x-source-partition"
SOURCE_OFFSET = "x-source-offset"


# ISO-8601 with an explicit offset, as the JSON Schema spells it (tests check they agree).
OCCURRED_AT_PATTERN = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$"
)


class EventKind(enum.StrEnum):
    DATA_ADDED = "data.added"
    CALL_RESULT = "call.result"
    DATA_REMOVED = "data.removed"
    # The campaign ended: no record event is expected after it but late ones, counted until
    # its grace ends (docs/events.md, "A campaign's end"). Carries no dataId.
    CAMPAIGN_CLOSED = "campaign.closed"


# What a reason for an unknown or missing eventType lists, in the contract's order.
KNOWN_EVENT_TYPES = ", ".join(kind.value for kind in EventKind)


class InvalidEvent(ValueError):
    """An event that breaks the contract; the message is the dead-letter reason."""


@dataclass(frozen=True, slots=True)
class CallEvent:
    kind: EventKind
    vdn_id: int
    campaign_id: str
    data_id: str  # "" for campaign.closed
    occurred_at_ms: int
    batch_id: str | None = None
    call_id: str | None = None  # call.result only
    connected: bool = False  # call.result only: callStatus 6
    final: bool = False  # call.result only: no further attempt for this record
    fail_code: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as the contract spells it (what the SDK publishes)."""
        body: dict[str, Any] = {
            "version": CONTRACT_VERSION,
            "eventType": self.kind.value,
            "vdnId": self.vdn_id,
            "campaignId": self.campaign_id,
            "occurredAt": self.occurred_at_ms,
        }
        if self.kind is not EventKind.CAMPAIGN_CLOSED:
            body["dataId"] = self.data_id
        if self.batch_id is not None:
            body["batchId"] = self.batch_id
        if self.kind is EventKind.CALL_RESULT:
            body["callId"] = self.call_id
            body["callStatus"] = CONNECTED if self.connected else FAILED
            body["final"] = self.final
            if self.fail_code is not None:
                body["failCode"] = self.fail_code
        return body

    @property
    def kafka_key(self) -> bytes:
        """``{vdnId}:{campaignId}``: one campaign's events stay on one partition, in order."""
        return f"{self.vdn_id}:{self.campaign_id}".encode()


def decode_event(raw: bytes | None) -> CallEvent:
    """The event in ``raw`` (one JSON object, UTF-8), or InvalidEvent naming what is wrong."""
    if raw is None:
        raise InvalidEvent("empty message (no value)")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidEvent(f"not JSON: {error}") from None
    if not isinstance(body, dict):
        raise InvalidEvent("not a JSON object")
    return event_from_json(body)


def event_from_json(body: dict[str, Any]) -> CallEvent:
    version = body.get("version", CONTRACT_VERSION)
    if version != CONTRACT_VERSION or isinstance(version, bool):
        raise InvalidEvent(f"unsupported contract version: {version!r}")
    kind = _event_kind(body)
    vdn_id = body.get("vdnId")
    if type(vdn_id) is not int or not MIN_VDN_ID <= vdn_id <= MAX_VDN_ID:
        _refuse_if_missing(body, "vdnId")
        raise InvalidEvent(
            f"vdnId must be an integer {MIN_VDN_ID}..{MAX_VDN_ID}, got {_short(vdn_id)}"
        )
    campaign_id = _identifier(body, "campaignId", MAX_ID_LENGTH)
    closing = kind is EventKind.CAMPAIGN_CLOSED
    # A campaign's end belongs to no record: it needs no dataId, and one it carries (well
    # formed, as the schema says) is ignored, as is its batchId.
    data_id = _identifier(body, "dataId", MAX_ID_LENGTH) if not closing or "dataId" in body else ""
    batch_id = body.get("batchId")
    if batch_id is not None:
        batch_id = _identifier(body, "batchId", MAX_BATCH_LENGTH, allow_empty=True) or None
    if "occurredAt" not in body:
        raise InvalidEvent("occurredAt is missing")
    occurred_at_ms = parse_occurred_at(body["occurredAt"])
    if closing:
        return CallEvent(kind, vdn_id, campaign_id, "", occurred_at_ms)
    if kind is not EventKind.CALL_RESULT:
        return CallEvent(kind, vdn_id, campaign_id, data_id, occurred_at_ms, batch_id)

    call_id = _identifier(body, "callId", MAX_ID_LENGTH)
    status = body.get("callStatus")
    if type(status) is not int or status not in (CONNECTED, FAILED):
        _refuse_if_missing(body, "callStatus")
        raise InvalidEvent(f"callStatus must be 6 (connected) or 5 (failed), got {_short(status)}")
    final = body.get("final")
    if type(final) is not bool:
        _refuse_if_missing(body, "final")
        raise InvalidEvent(f"final must be true or false, got {_short(final)}")
    fail_code = body.get("failCode")
    if fail_code is not None and (not isinstance(fail_code, str) or len(fail_code) > 16):
        raise InvalidEvent(
            f"failCode must be a string of at most 16 characters, got {_short(fail_code)}"
        )
    return CallEvent(
        kind, vdn_id, campaign_id, data_id, occurred_at_ms, batch_id,
        call_id=call_id, connected=status == CONNECTED, final=final, fail_code=fail_code,
    )  # fmt: skip


def parse_occurred_at(value: object) -> int:
    """Epoch milliseconds from ISO-8601 with an explicit offset, or from epoch milliseconds."""
    if type(value) is int:
        if not 0 <= value < 10**14:
            raise InvalidEvent(f"occurredAt out of range: {value}")
        return value
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidEvent(
            f"occurredAt must be ISO-8601 or epoch milliseconds, got {_short(value)}"
        )
    # fullmatch: "$" alone would let a trailing newline through.
    if not OCCURRED_AT_PATTERN.fullmatch(value):
        raise InvalidEvent(
            f"occurredAt needs ISO-8601 with an explicit offset (+08:00 or Z): {_short(value)}"
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"occurredAt is not a valid date and time: {_short(value)}") from None
    return occurred_at_ms(moment, value)  # the pattern requires an offset: moment is aware


def occurred_at_ms(moment: datetime, shown: object) -> int:
    """The aware ``moment`` as an event's occurredAt, or ``InvalidEvent`` naming ``shown``.

    One rule for every way an event gets its time (ISO-8601 here, a callback's local time):
    from the epoch up to 10^14 ms (year 5138).
    """
    try:
        milliseconds = epoch_ms(moment)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise InvalidEvent(f"occurredAt out of range: {_short(shown)}") from None
    if not 0 <= milliseconds < 10**14:
        raise InvalidEvent(f"occurredAt out of range: {_short(shown)}")
    return milliseconds


def epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of the aware ``moment`` (sub-millisecond digits dropped).

    Integer arithmetic on timedeltas: a float timestamp could round 23:59:59.9995 into
    tomorrow, and the day decides which daily counters an event moves. ``OverflowError`` when
    ``moment`` falls before year 1 in UTC.
    """
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"a naive time has no instant: {moment!r}")
    return (moment.replace(tzinfo=None) - offset - _EPOCH) // _MILLISECOND


_EPOCH = datetime(1970, 1, 1)
_MILLISECOND = timedelta(milliseconds=1)


def _event_kind(body: dict[str, Any]) -> EventKind:
    try:
        return EventKind(str(body.get("eventType")))
    except ValueError:
        _refuse_if_missing(body, "eventType", f" (one of {KNOWN_EVENT_TYPES})")
        raise InvalidEvent(
            f"unknown eventType: {_short(body.get('eventType'))} (known: {KNOWN_EVENT_TYPES})"
        ) from None


def _identifier(body: dict[str, Any], name: str, max_length: int, allow_empty: bool = False) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        _refuse_if_missing(body, name)
        raise InvalidEvent(f"{name} must be a string, got {_short(value)}")
    if not value and not allow_empty:
        raise InvalidEvent(f"{name} must not be empty")
    if len(value) > max_length:
        raise InvalidEvent(f"{name} is longer than {max_length} characters")
    if not is_allowed_identifier(value):
        raise InvalidEvent(f"{name} holds a control character or a brace: {_short(value)}")
    return value


def _refuse_if_missing(body: dict[str, Any], name: str, hint: str = "") -> None:
    """``InvalidEvent`` saying that ``name`` is missing when ``body`` lacks it: "must be a
    string, got None" would send a publisher looking for a null it never sent."""
    if name not in body:
        raise InvalidEvent(f"{name} is missing{hint}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
