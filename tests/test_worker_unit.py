"""The worker's agent and hooks (engine/agents.py, ``CountingWorker``) one at a time, without a
running Faust worker: the app is built and never started, Redis and Kafka are the real local
ones, and only Faust's consumer (its assignment, seeks and acknowledgements) is stood in for.

The worker as a whole, in its own process, is tests/test_worker.py's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from faust.types import TP
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from isales_stats.core.days import today_in
from isales_stats.core.events import event_from_json
from isales_stats.core.settings import Settings
from isales_stats.engine import metrics
from isales_stats.engine.agents import FETCHES_IN_FLIGHT, CountingWorker
from isales_stats.engine.app import create_app
from isales_stats.engine.context import CountingContext
from isales_stats.engine.counting import EventCounter
from isales_stats.engine.statistics import StatisticsReader
from isales_stats.engine.topics import ensure_topics
from tests.support.clock import GMT8, SettableClock
from tests.support.events import ADDED, CALL, call_event
from tests.support.kafka_topics import end_offsets, read_dead_letters
from tests.support.ports import free_port

pytestmark = [pytest.mark.stack, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class StandInConsumer:
    """What the worker asks of Faust's consumer: the partitions it owns, a seek run in its
    thread, and acknowledgements; each call recorded."""

    assigned: set[TP] = field(default_factory=set)
    seeks: list[dict[TP, int]] = field(default_factory=list)
    acked: list[Any] = field(default_factory=list)

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    async def seek_wait(self, offsets: Mapping[TP, int]) -> None:
        self.seeks.append(dict(offsets))

    def ack(self, message: Any) -> bool:
        self.acked.append(message)
        return True

    def highwater(self, tp: TP) -> int | None:  # read by the lag gauges at a scrape
        return None


@dataclass(frozen=True)
class Fetched:
    """A Kafka record as the consumer hands it over (the attributes of Faust's Message)."""

    value: bytes
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    timestamp: float = 0.0


@pytest.fixture(autouse=True)
def lag_gauges_left_as_found() -> Iterator[None]:
    """The agent attaches its consumer to the process-wide lag gauges: put theirs back."""
    lag = metrics.PARTITION_LAG
    consumer, topic, last_counted = lag.consumer, lag.topic, dict(lag.last_counted)
    yield
    lag.attach(consumer, topic)
    lag.last_counted = last_counted


def counting_worker(
    settings: Settings, consumer: StandInConsumer, context: CountingContext | None = None
) -> CountingWorker:
    """The worker on an app that is never started; made in the test's event loop."""
    app = create_app(settings)
    app.consumer = consumer  # type: ignore[assignment]  # the one stand-in
    return CountingWorker(app, settings, context)


def unreachable_redis() -> Redis:
    """A client of a port nobody listens on: every command fails at once, not retried."""
    return Redis(port=free_port(), retry=Retry(NoBackoff(), 0))


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def fetch(settings: Settings, events: list[dict[str, Any]], first_offset: int) -> list[Fetched]:
    """``events`` as one fetch of partition 0, from ``first_offset`` on."""
    return [
        Fetched(orjson.dumps(event), settings.call_events_topic, 0, first_offset + index)
        for index, event in enumerate(events)
    ]


async def stream_of(fetches: list[list[Fetched]]) -> AsyncIterator[list[Fetched]]:
    for messages in fetches:
        yield messages


# --- resume points and reading again --------------------------------------------------------


async def test_resume_points_are_the_offsets_stored_with_the_counts(
    test_settings: Settings,
) -> None:
    topic = test_settings.call_events_topic
    worker = counting_worker(test_settings, StandInConsumer())
    async with Redis.from_url(test_settings.redis_url) as redis:
        await redis.hset(worker.context.layout.counted_offsets(topic), mapping={"0": 41, "2": 7})
        points = await worker.resume_points({TP(topic, 0), TP(topic, 1), TP(topic, 2)})
    # The next offset after the one counted; a partition with none stored is Kafka's to say.
    assert points == {TP(topic, 0): 42, TP(topic, 2): 8}


async def test_resume_points_make_the_counter_forget_what_it_stored_for_those_partitions(
    test_settings: Settings,
) -> None:
    """After a rebalance another worker may have counted further: no loss to heal there."""
    topic = test_settings.call_events_topic
    consumer = StandInConsumer({TP(topic, 0), TP(topic, 1)})
    worker = counting_worker(test_settings, consumer)
    async with Redis.from_url(test_settings.redis_url) as redis:
        worker.counter = EventCounter(redis, worker.context)  # what the agent makes
        await worker.counter.count([], {(topic, 0): 41, (topic, 1): 9})
        assert await worker.resume_points({TP(topic, 0)}) == {TP(topic, 0): 42}
        await redis.delete(worker.context.layout.counted_offsets(topic))  # both "lost"
        await worker.look_for_lost_counts()
    assert consumer.seeks == [{TP(topic, 1): 0}]


async def test_read_again_seeks_back_only_the_partitions_still_assigned(
    test_settings: Settings,
) -> None:
    topic = test_settings.call_events_topic
    consumer = StandInConsumer({TP(topic, 0)})
    worker = counting_worker(test_settings, consumer)
    losses = sample("isales_redis_lost_writes_total")
    async with Redis.from_url(test_settings.redis_url) as redis:
        worker.counter = EventCounter(redis, worker.context)
        await worker.counter.count([], {(topic, 0): 50, (topic, 1): 60})
        await worker.read_again({(topic, 0): 10, (topic, 1): 20})
        # Both are forgotten: partition 1 moved to a worker that resumes from Redis itself.
        await redis.delete(worker.context.layout.counted_offsets(topic))
        assert await worker.counter.find_lost_offsets() == {}
    assert consumer.seeks == [{TP(topic, 0): 10}]
    assert sample("isales_redis_lost_writes_total") == losses + 1


async def test_the_loss_check_seeks_back_to_where_redis_lost_counts(
    test_settings: Settings,
) -> None:
    topic = test_settings.call_events_topic
    consumer = StandInConsumer({TP(topic, 0), TP(topic, 1), TP(topic, 2)})
    worker = counting_worker(test_settings, consumer)
    offsets = worker.context.layout.counted_offsets(topic)
    async with Redis.from_url(test_settings.redis_url) as redis:
        worker.counter = EventCounter(redis, worker.context)
        await worker.counter.count([], {(topic, 0): 41, (topic, 1): 9, (topic, 2): 5})
        await worker.look_for_lost_counts()
        assert consumer.seeks == []  # nothing lost
        await redis.hset(offsets, "0", 30)  # Redis went back to an older copy
        await redis.hdel(offsets, "1")  # or lost the partition's offset altogether
        await worker.look_for_lost_counts()
    assert consumer.seeks == [{TP(topic, 0): 31}, {TP(topic, 1): 0}]


async def test_the_timers_pass_over_a_redis_that_does_not_answer(test_settings: Settings) -> None:
    topic = test_settings.call_events_topic
    consumer = StandInConsumer({TP(topic, 0)})
    worker = counting_worker(test_settings, consumer)
    async with Redis.from_url(test_settings.redis_url) as redis, unreachable_redis() as nobody:
        worker.counter = EventCounter(redis, worker.context)
        await worker.counter.count([], {(topic, 0): 41})
        worker.counter.redis = nobody  # Redis goes away
        await worker.look_for_lost_counts()  # the connection refused: next time, then
        await worker.watch_redis_memory()
    assert consumer.seeks == []


async def test_the_hooks_wait_for_the_agent_to_make_its_counter(test_settings: Settings) -> None:
    consumer = StandInConsumer()
    worker = counting_worker(test_settings, consumer)
    errors = sample("isales_lifecycle_sweep_errors_total")
    await worker.look_for_lost_counts()
    await worker.watch_redis_memory()
    await worker.release_ended_campaigns()
    await worker.read_again({(test_settings.call_events_topic, 0): 5})  # not assigned
    assert consumer.seeks == []
    assert sample("isales_lifecycle_sweep_errors_total") == errors


# --- the timers -----------------------------------------------------------------------------


async def test_redis_memory_goes_into_the_gauges(test_settings: Settings) -> None:
    worker = counting_worker(test_settings, StandInConsumer())
    metrics.REDIS_USED_MEMORY.labels("").set(0)
    async with Redis.from_url(test_settings.redis_url) as redis:
        worker.counter = EventCounter(redis, worker.context)
        await worker.watch_redis_memory()
    assert sample("isales_redis_used_memory_bytes", {"node": ""}) > 0


async def test_the_sweep_releases_a_campaign_closed_longer_than_its_grace(
    test_settings: Settings,
) -> None:
    clock = SettableClock()
    context = CountingContext.from_settings(test_settings, clock=clock)
    worker = counting_worker(test_settings, StandInConsumer(), context)
    moment = int(clock() * 1000)
    events = [
        call_event(ADDED, campaignId="C1", occurredAt=moment),
        call_event(CALL, campaignId="C1", occurredAt=moment),
        {"eventType": "campaign.closed", "vdnId": 1, "campaignId": "C1", "occurredAt": moment},
    ]
    layout = context.layout
    async with Redis.from_url(test_settings.redis_url) as redis:
        worker.counter = EventCounter(redis, context)
        await worker.counter.count([event_from_json(event) for event in events])
        await worker.release_ended_campaigns()
        assert await redis.zscore(layout.vdn_released_campaigns(1), "C1") is None  # its grace
        clock.advance(context.policy.grace_seconds + 60)
        await worker.release_ended_campaigns()
        assert await redis.zscore(layout.vdn_released_campaigns(1), "C1") is not None
        assert not await redis.exists(layout.campaign_records(1, "C1"))
        (kept,) = await StatisticsReader(redis, context).read_count_detail(
            1, today_in(test_settings.time_zone_of(1), clock), "C1"
        )
    assert kept["totalCalledCount"] == 1  # its counters stay


async def test_a_failed_sweep_is_counted_and_logged_then_tried_again_next_time(
    test_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    worker = counting_worker(test_settings, StandInConsumer())
    errors = sample("isales_lifecycle_sweep_errors_total")
    async with unreachable_redis() as nobody:
        worker.counter = EventCounter(nobody, worker.context)
        with caplog.at_level(logging.WARNING, logger="isales_stats.engine.agents"):
            await worker.release_ended_campaigns()  # does not raise: the timer goes on
    assert sample("isales_lifecycle_sweep_errors_total") == errors + 1
    assert "lifecycle sweep failed" in caplog.text


# --- handing fetches over -------------------------------------------------------------------


async def test_the_consumer_waits_while_four_fetches_are_in_flight(test_settings: Settings) -> None:
    worker = counting_worker(test_settings, StandInConsumer())
    worker.app.flow_control.resume()  # as Faust does once partitions are assigned
    agent_end = worker.fetches.clone(is_iterator=True)  # what the agent iterates
    for number in range(FETCHES_IN_FLIGHT):
        await asyncio.wait_for(worker.hand_over([number]), 1)
    fifth = asyncio.create_task(worker.hand_over([FETCHES_IN_FLIGHT]))
    await asyncio.sleep(0.1)
    assert not fifth.done()  # back-pressure: the consumer stops fetching
    assert (await agent_end.get()).value == [0]
    await asyncio.wait_for(fifth, 1)
    received = [(await agent_end.get()).value for _ in range(FETCHES_IN_FLIGHT)]
    assert received == [[1], [2], [3], [4]]


async def test_a_hand_over_a_revocation_cancels_drops_the_fetch_and_goes_on(
    test_settings: Settings,
) -> None:
    worker = counting_worker(test_settings, StandInConsumer())
    worker.app.flow_control.resume()
    agent_end = worker.fetches.clone(is_iterator=True)
    for number in range(FETCHES_IN_FLIGHT):
        await worker.hand_over([number])
    waiting = asyncio.create_task(worker.hand_over(["dropped"]))
    await asyncio.sleep(0.1)
    agent_end.queue.clear()  # a revocation: Faust clears the queue, cancels the puts waiting
    await asyncio.wait_for(waiting, 1)  # returned, not raised: the fetcher lives on
    assert agent_end.queue.empty()


async def test_a_hand_over_whose_own_task_is_stopped_is_cancelled(test_settings: Settings) -> None:
    worker = counting_worker(test_settings, StandInConsumer())
    worker.app.flow_control.resume()
    worker.fetches.clone(is_iterator=True)
    for number in range(FETCHES_IN_FLIGHT):
        await worker.hand_over([number])
    waiting = asyncio.create_task(worker.hand_over(["stopped"]))
    await asyncio.sleep(0.1)
    waiting.cancel()  # the worker stopping
    with pytest.raises(asyncio.CancelledError):
        await waiting


# --- the agent ------------------------------------------------------------------------------


async def test_the_agent_counts_each_fetch_then_acknowledges_it_in_fetch_order(
    test_settings: Settings,
) -> None:
    topic = test_settings.call_events_topic
    consumer = StandInConsumer({TP(topic, 0)})
    worker = counting_worker(test_settings, consumer)
    events = [
        call_event(ADDED, dataId=f"d{n}", batchId="B1", campaignId=f"C{n % 3}") for n in range(30)
    ] + [
        call_event(CALL, dataId=f"d{n}", batchId="B1", campaignId=f"C{n % 3}", callId=f"x{n}")
        for n in range(0, 30, 2)
    ]
    fetches = [fetch(test_settings, events[start : start + 10], start) for start in (0, 10, 20)]
    fetches.append(fetch(test_settings, events[30:], 30))
    await worker.count_call_events(stream_of(fetches))
    assert consumer.acked == [message for messages in fetches for message in messages]
    assert consumer.seeks == []
    assert metrics.PARTITION_LAG.last_counted[0].offset == len(events) - 1
    async with Redis.from_url(test_settings.redis_url) as redis:
        stored = await redis.hget(worker.context.layout.counted_offsets(topic), "0")
        detail = await StatisticsReader(redis, worker.context).read_count_detail(1, today_in(GMT8))
    assert int(stored or -1) == len(events) - 1
    assert {entry["campaignId"]: entry["totalCount"] for entry in detail} == {
        "C0": 10,
        "C1": 10,
        "C2": 10,
    }
    assert sum(entry["totalCalledCount"] for entry in detail) == 15


@dataclass
class ConsumerLookingAtDeadLetters(StandInConsumer):
    """Notes, at each acknowledgement, how many dead letters Kafka holds: read from the test's
    thread while the agent's event loop waits, so a dead letter still on its way is not there."""

    settings: Settings | None = None
    dead_letters_at_ack: list[int] = field(default_factory=list)

    def ack(self, message: Any) -> bool:
        assert self.settings is not None
        ends = end_offsets(self.settings, self.settings.dead_letter_topic)
        self.dead_letters_at_ack.append(sum(ends.values()))
        return super().ack(message)


async def test_the_agent_acknowledges_a_dead_letter_once_kafka_has_it(
    test_settings: Settings,
) -> None:
    ensure_topics(test_settings)
    topic = test_settings.call_events_topic
    consumer = ConsumerLookingAtDeadLetters({TP(topic, 0)}, settings=test_settings)
    worker = counting_worker(test_settings, consumer)
    good = call_event(ADDED)
    broken = Fetched(b"{not json", topic, 0, 1, key=b"1:C1")
    messages = [Fetched(orjson.dumps(good), topic, 0, 0), broken]
    try:
        await worker.count_call_events(stream_of([messages]))
    finally:
        await worker.app.producer.stop()
    assert consumer.acked == messages
    assert consumer.dead_letters_at_ack == [1, 1]
    (letter,) = await asyncio.to_thread(read_dead_letters, test_settings, 1)
    headers = dict(letter.headers)
    assert (letter.key, letter.value) == (b"1:C1", b"{not json")
    assert headers["x-dead-letter-category"] == b"invalid"
    assert headers["x-source-offset"] == b"1"
