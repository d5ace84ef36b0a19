"""The worker as a process: dead letters, committed offsets, and Redis outages."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from isales_stats.core.events import decode_event
from isales_stats.core.settings import Settings
from isales_stats.engine.counting import CountingOutcome
from isales_stats.engine.pipeline import CountingPipeline, RawMessage
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.publisher import EventPublisher
from tests.support.detail import read_detail
from tests.support.events import CALL, call_event
from tests.support.kafka_topics import committed_offsets, end_offsets, read_dead_letters
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack


def call_result(**changes: Any) -> dict[str, Any]:
    """A connected, final call x1 of record d1 in batch B1 (VDN 1, campaign C1), now."""
    return call_event(CALL, **{"batchId": "B1", **changes})


def test_bad_events_go_to_the_dead_letter_topic_with_their_reason(
    test_settings: Settings, tmp_path: Path
) -> None:
    ensure_topics(test_settings)
    far_future = int(time.time() * 1000) + 3_600_000
    bad = [
        b"not json at all",
        b"[1, 2, 3]",
        orjson.dumps(call_result(eventType="call.started")),
        orjson.dumps(call_result(vdnId=0)),
        orjson.dumps(call_result(callStatus=7)),
        orjson.dumps(call_result(occurredAt=far_future)),
        orjson.dumps(call_result(callId="x2", batchId="B2")),  # contradicts d1's batch B1
    ]
    with EventPublisher(test_settings) as publisher:
        publisher.publish(call_result())
        for value in bad:
            publisher.publish_raw(value, key=b"1:C1")
        publisher.publish(call_result(callId="x3"))

    with ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as w:
        letters = read_dead_letters(test_settings, len(bad))
        counted = wait_for(lambda: (d := read_detail(test_settings)) and d[0], 30)
        assert counted, w.log()

    assert sorted(letter.value for letter in letters) == sorted(bad)
    by_value = {letter.value: dict(letter.headers) for letter in letters}
    reasons = {
        value: headers["x-dead-letter-reason"].decode() for value, headers in by_value.items()
    }
    assert "not JSON" in reasons[b"not json at all"]
    assert "unknown eventType" in reasons[bad[2]]
    assert "vdnId" in reasons[bad[3]]
    assert "callStatus" in reasons[bad[4]]
    assert by_value[bad[5]]["x-dead-letter-category"] == b"future"
    assert by_value[bad[6]]["x-dead-letter-category"] == b"batch-conflict"
    for headers in by_value.values():
        assert headers["x-source-topic"] == test_settings.call_events_topic.encode()
        assert int(headers["x-source-offset"]) >= 1
    # The good events around the bad ones were counted; the worker never stopped.
    assert counted["totalCalledCount"] == 2


def test_a_stopped_worker_has_committed_what_it_counted(
    test_settings: Settings, tmp_path: Path
) -> None:
    ensure_topics(test_settings)
    with EventPublisher(test_settings) as publisher:
        for n in range(3000):
            publisher.publish(call_result(dataId=f"d{n}", callId=f"x{n}", campaignId=f"C{n % 7}"))

    with ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0):
        assert wait_for(lambda: sum(c["totalCalledCount"] for c in read_detail(test_settings))
                        == 3000, 60)  # fmt: skip
    # A graceful stop commits; a restart would resume at the end, not replay the topic.
    committed = committed_offsets(test_settings)
    ends = end_offsets(test_settings)
    assert {tp: committed[tp] for tp in ends if ends[tp]} == {
        tp: end for tp, end in ends.items() if end
    }


class FlakyCounter:
    """Fails like a Redis that is restarting, then counts: a failure real Redis cannot be
    made to show on demand without disturbing the other tests that share it."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def count(self, events: list[Any], offsets: Any = None) -> CountingOutcome:
        self.calls += 1
        if self.calls <= self.failures:
            raise RedisConnectionError("Connection refused")
        return CountingOutcome(applied=len(events))


def test_counting_is_retried_until_redis_answers_and_nothing_is_dropped() -> None:
    counter = FlakyCounter(failures=3)
    pipeline = CountingPipeline(counter, 300, retry_delays=(0.01,))  # type: ignore[arg-type]
    message = RawMessage(orjson.dumps(call_result()))
    report = asyncio.run(pipeline.process([message]))
    assert (counter.calls, report.counted) == (4, 1)


def test_the_admission_step_names_what_is_wrong() -> None:
    pipeline = CountingPipeline(FlakyCounter(0), 300)  # type: ignore[arg-type]
    good = orjson.dumps(call_result())
    batch = pipeline.admit([RawMessage(b"{}"), RawMessage(good)])
    assert [letter.reason for letter in batch.dead_letters] == [
        "eventType is missing (one of data.added, call.result, data.removed, campaign.closed)"
    ]
    assert batch.events == [decode_event(good)]
