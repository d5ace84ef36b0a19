"""The event contract: the JSON Schema we publish and the decoder the worker runs agree."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta, timezone
from importlib.resources import files
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from isales_stats.core.events import (
    OCCURRED_AT_PATTERN,
    EventKind,
    InvalidEvent,
    decode_event,
    event_from_json,
)
from isales_stats.core.keys import FORBIDDEN_ID_CHARACTER_PATTERN
from isales_stats.producing.publisher import validate_event

SCHEMA = json.loads(files("isales_stats.engine").joinpath("call-event.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

ids = st.text(min_size=1, max_size=64).filter(lambda s: not any(c in s for c in "{}"))
printable_ids = st.text(
    st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters="{}"),
    min_size=1,
    max_size=64,
)
# Offsets in whole minutes, as the contract requires (historical zones had seconds).
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
moments = st.one_of(
    st.integers(0, 99_999_999_999_999),
    st.datetimes(datetime(1971, 1, 1), datetime(2999, 12, 31), timezones=offsets).map(
        lambda moment: moment.isoformat()
    ),
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["data.added", "call.result", "data.removed", "campaign.closed"]))
    event: dict[str, Any] = {
        "eventType": kind,
        "vdnId": draw(st.integers(1, 9999)),
        "campaignId": draw(printable_ids),
        "dataId": draw(printable_ids),
        "occurredAt": draw(moments),
    }
    if kind == "campaign.closed" and draw(st.booleans()):
        del event["dataId"]  # a campaign's end needs none
    if draw(st.booleans()):
        event["version"] = 1
    if draw(st.booleans()):
        event["batchId"] = draw(st.one_of(st.none(), st.just(""), printable_ids))
    if kind == "call.result":
        event["callId"] = draw(printable_ids)
        event["callStatus"] = draw(st.sampled_from([5, 6]))
        event["final"] = draw(st.booleans())
        if draw(st.booleans()):
            event["failCode"] = draw(st.text(max_size=16))
    return event


def schema_accepts(event: Any) -> bool:
    return VALIDATOR.is_valid(event)


def decoder_accepts(event: Any) -> bool:
    try:
        decode_event(orjson.dumps(event))
    except InvalidEvent:
        return False
    return True


# Ways to break a valid event: each must be refused by both.
BREAKAGES = [
    ("vdnId", 0), ("vdnId", 10_000), ("vdnId", "1"), ("vdnId", True),
    ("campaignId", ""), ("campaignId", "x" * 65), ("campaignId", "a{b"), ("campaignId", 7),
    ("dataId", "line\nbreak"), ("dataId", None), ("batchId", "b" * 201), ("batchId", "}"),
    ("eventType", "call.started"), ("eventType", None), ("version", 2), ("version", True),
    ("occurredAt", "2026-11-28T10:00:00"), ("occurredAt", "2026-11-28"), ("occurredAt", -1),
    ("occurredAt", 1.5), ("occurredAt", "2026-11-28T10:00:00+08:00\n"), ("occurredAt", None),
]  # fmt: skip
CALL_BREAKAGES = [
    ("callStatus", 7), ("callStatus", "6"), ("final", "yes"), ("final", None),
    ("callId", ""), ("failCode", "x" * 17), ("failCode", 0),
]  # fmt: skip


@given(valid_events())
def test_every_valid_event_is_accepted_by_both(event: dict[str, Any]) -> None:
    assert schema_accepts(event), list(VALIDATOR.iter_errors(event))
    assert decoder_accepts(event)


@given(valid_events(), st.sampled_from(BREAKAGES + CALL_BREAKAGES))
def test_every_broken_event_is_refused_by_both(
    event: dict[str, Any], breakage: tuple[str, Any]
) -> None:
    field, value = breakage
    if (field, value) in CALL_BREAKAGES and event["eventType"] != "call.result":
        event["eventType"] = "call.result"
        event.update(callId="c1", callStatus=6, final=True)
    event[field] = value
    assert not schema_accepts(event)
    assert not decoder_accepts(event)


def test_a_campaigns_end_needs_no_data_id_and_ignores_the_one_it_carries() -> None:
    closed = {"eventType": "campaign.closed", "vdnId": 1, "campaignId": "C", "occurredAt": 0}
    assert schema_accepts(closed)
    assert decoder_accepts(closed)
    assert event_from_json({**closed, "dataId": "d", "batchId": "b"}).data_id == ""
    assert event_from_json(closed).to_json() == {"version": 1, **closed}


@pytest.mark.parametrize("field", ["eventType", "vdnId", "campaignId", "dataId", "occurredAt"])
def test_a_missing_field_is_refused_by_both_and_named(field: str) -> None:
    event = {"eventType": "data.added", "vdnId": 1, "campaignId": "C", "dataId": "d",
             "occurredAt": 0}  # fmt: skip
    del event[field]
    assert not schema_accepts(event)
    with pytest.raises(InvalidEvent, match=f"^{field} is missing"):
        event_from_json(event)


@pytest.mark.parametrize("field", ["callId", "callStatus", "final"])
def test_a_call_results_missing_field_says_missing_on_every_path(field: str) -> None:
    event = {"eventType": "call.result", "vdnId": 1, "campaignId": "C", "dataId": "d",
             "occurredAt": 0, "callId": "x", "callStatus": 6, "final": True}  # fmt: skip
    del event[field]
    # The worker's decoder (its reason is the dead letter's) and the SDK's check alike.
    with pytest.raises(InvalidEvent, match=f"^{field} is missing$"):
        decode_event(orjson.dumps(event))
    with pytest.raises(InvalidEvent, match=f"^{field} is missing$"):
        validate_event(event, 300, now=0)


def test_a_null_is_not_called_missing() -> None:
    event = {"eventType": "data.added", "vdnId": 1, "campaignId": None, "dataId": "d",
             "occurredAt": 0}  # fmt: skip
    with pytest.raises(InvalidEvent, match=r"^campaignId must be a string, got None$"):
        event_from_json(event)


@pytest.mark.parametrize("event_type", ["call.Result", "callResult", 7])
def test_an_unknown_event_type_lists_the_known_ones(event_type: object) -> None:
    event = {"eventType": event_type, "vdnId": 1, "campaignId": "C", "dataId": "d",
             "occurredAt": 0}  # fmt: skip
    with pytest.raises(InvalidEvent) as refused:
        event_from_json(event)
    reason = str(refused.value)
    assert reason.startswith(f"unknown eventType: {event_type!r} (known: ")
    for kind in EventKind:
        assert kind.value in reason


def test_the_schema_and_the_decoder_spell_the_same_patterns() -> None:
    definitions = SCHEMA["$defs"]
    assert definitions["forbiddenCharacter"]["pattern"] == FORBIDDEN_ID_CHARACTER_PATTERN
    iso = SCHEMA["properties"]["occurredAt"]["oneOf"][1]["pattern"]
    assert iso == OCCURRED_AT_PATTERN.pattern


def test_what_the_sdk_publishes_is_valid_against_the_schema() -> None:
    event = event_from_json(
        {"eventType": "call.result", "vdnId": 3, "campaignId": "1798316116", "dataId": "s1",
         "callId": "0023-134864174", "callStatus": 5, "failCode": "00603", "final": False,
         "batchId": "123456", "occurredAt": "2020-08-30T20:00:00+08:00"}
    )  # fmt: skip
    assert schema_accepts(event.to_json())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(valid_events(), st.sampled_from(sorted(SCHEMA["properties"])), json_values)
def test_the_decoder_never_fails_other_than_with_invalid_event(
    event: dict[str, Any], field: str, value: Any
) -> None:
    """Whatever arrives, the worker gets a reason for the dead-letter topic, not a crash."""
    event[field] = value
    with contextlib.suppress(InvalidEvent):
        decode_event(json.dumps(event).encode())  # json: integers beyond 64 bits too


@given(st.binary())
def test_random_bytes_are_refused_with_a_reason(raw: bytes) -> None:
    reasons = []
    try:
        decode_event(raw)
    except InvalidEvent as error:
        reasons.append(str(error))
    assert all(reasons)
