"""The publisher SDK against the real Kafka: what it sends, what it refuses, how it delivers."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jsonschema
import pytest

from isales_stats.core.events import InvalidEvent, event_from_json
from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.publisher import AsyncEventPublisher, EventPublisher, validate_event
from tests.support.events import ADDED, CALL, REMOVED, SCHEMA_PATH, call_event
from tests.support.kafka_topics import read_topic

pytestmark = pytest.mark.stack

NOW_MS = int(time.time() * 1000)
TOLERANCE = Settings().future_tolerance_seconds


def call_result(data_id: str, call_id: str, **changes: Any) -> dict[str, Any]:
    """A connected, final call of VDN 7's campaign C1, batch B1, at a fixed moment."""
    fields = {"vdnId": 7, "batchId": "B1", "dataId": data_id, "callId": call_id,
              "failCode": "00000", "occurredAt": "2026-11-27T09:30:00+08:00"}  # fmt: skip
    return call_event(CALL, **{**fields, **changes})


def added(data_id: str, campaign: str = "C1") -> dict[str, Any]:
    return call_event(ADDED, vdnId=7, campaignId=campaign, dataId=data_id, occurredAt=NOW_MS)


def test_events_go_out_keyed_by_campaign_in_the_contract_form(test_settings: Settings) -> None:
    ensure_topics(test_settings)
    events = [added("r1"), call_result("r1", "k1"), added("r2", campaign="C2")]
    with EventPublisher(test_settings) as publisher:  # leaving the block flushes
        for event in events:
            publisher.publish(event)

    landed = read_topic(test_settings)
    assert sorted(landed, key=lambda message: message[1]["dataId"] + message[1]["eventType"]) == [
        (b"7:C1", {"version": 1, **call_result("r1", "k1", occurredAt=1795743000000)}),
        (b"7:C1", {"version": 1, **added("r1")}),
        (b"7:C2", {"version": 1, **added("r2", campaign="C2")}),
    ]
    # One campaign, one partition, in publishing order.
    assert [value["eventType"] for key, value in landed if key == b"7:C1"] == [
        "data.added",
        "call.result",
    ]


def test_published_json_satisfies_the_contract_schema(test_settings: Settings) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    ensure_topics(test_settings)
    events = [
        added("r1"),
        call_result("r1", "k1"),
        call_result("r2", "k2", callStatus=5, final=False, failCode="00603"),
        call_event(REMOVED, vdnId=7, dataId="r3", batchId="B1", occurredAt=NOW_MS),
    ]
    with EventPublisher(test_settings) as publisher:
        for event in events:
            publisher.publish(event)
    landed = [value for _, value in read_topic(test_settings)]
    assert len(landed) == 4
    for value in landed:
        jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"vdnId": 0}, "vdnId"),
        ({"campaignId": ""}, "campaignId"),
        ({"callId": None}, "callId"),
        ({"callStatus": 1}, "callStatus"),
        ({"final": "yes"}, "final"),
        ({"occurredAt": "2026-11-27 09:30:00"}, "occurredAt"),
        ({"batchId": "a{b}"}, "batchId"),
        ({"eventType": "call.started"}, "eventType"),
    ],
)
def test_an_invalid_event_is_refused_naming_the_field(change: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidEvent, match=named):
        validate_event(call_result("r1", "k1", **change), TOLERANCE, time.time())


def test_an_event_from_too_far_in_the_future_is_refused() -> None:
    now = time.time()
    latest_ms = int(now * 1000) + TOLERANCE * 1000
    validate_event(call_result("r1", "k1", occurredAt=latest_ms), TOLERANCE, now)
    with pytest.raises(InvalidEvent, match=rf"occurredAt is {TOLERANCE + 60} s in the future"):
        validate_event(call_result("r1", "k1", occurredAt=latest_ms + 60_000), TOLERANCE, now)
    with pytest.raises(InvalidEvent, match="JSON object"):
        validate_event(["not", "an", "object"], TOLERANCE, now)  # type: ignore[arg-type]


def test_nothing_is_sent_for_an_invalid_event(test_settings: Settings) -> None:
    ensure_topics(test_settings)
    with EventPublisher(test_settings) as publisher:
        with pytest.raises(InvalidEvent, match="vdnId"):
            publisher.publish(call_result("r1", "k1", vdnId="7"))
        with pytest.raises(InvalidEvent, match="callStatus"):
            publisher.publish_all([added("r2"), call_result("r2", "k2", callStatus=None)])
        publisher.publish(added("r3"))
    assert [value["dataId"] for _, value in read_topic(test_settings)] == ["r3"]


def test_the_producer_is_idempotent_and_waits_for_all_replicas(test_settings: Settings) -> None:
    with EventPublisher(test_settings) as publisher:
        config = publisher._producer.config
        assert config["enable_idempotence"] is True
        assert config["acks"] == -1  # "all"
        assert config["linger_ms"] > 0
        assert config["batch_size"] >= 64 * 1024


def test_publish_all_returns_once_kafka_acknowledged_every_event(test_settings: Settings) -> None:
    ensure_topics(test_settings)
    with EventPublisher(test_settings) as publisher:
        assert publisher.publish_all([added(f"r{n}") for n in range(50)], timeout=20) == 50
        # No flush here: publish_all has waited for the acknowledgements itself.
        assert len(read_topic(test_settings)) == 50


def test_the_async_publisher_waits_for_acknowledgements(test_settings: Settings) -> None:
    ensure_topics(test_settings)

    async def publish() -> int:
        publisher = AsyncEventPublisher(test_settings, timeout=20)
        try:
            return await publisher.publish_all([call_result(f"r{n}", f"k{n}") for n in range(20)])
        finally:
            await publisher.close()

    assert asyncio.run(publish()) == 20
    assert {value["callId"] for _, value in read_topic(test_settings)} == {
        f"k{n}" for n in range(20)
    }


def test_validation_agrees_with_the_workers_decoder() -> None:
    event = call_result("r1", "k1")
    assert validate_event(event, TOLERANCE, time.time()) == event_from_json(event)
