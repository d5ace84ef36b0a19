"""The idempotence state in bucketed hashes (engine/buckets.lua), against the real Redis.

Buckets hold 40 entries on average and split one at a time as a campaign grows: these tests
grow campaigns through hundreds of splits, in batches of every size and with every event sent
again, and hold the counters to the reference model; they check that every bucket stays in
Redis' listpack encoding, that state written in the layout before buckets is still honoured,
and what a record costs.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from isales_stats.core.days import today_in
from isales_stats.core.events import CallEvent, decode_event
from isales_stats.core.keys import BUCKET_FILL, BUCKET_SIZE_FIELD, KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.counting import EventCounter
from isales_stats.engine.lifecycle import CampaignLifecycle
from isales_stats.engine.state import records_known, state_sizes
from isales_stats.engine.statistics import StatisticsReader
from tests.support.clock import GMT8, SettableClock
from tests.support.counting import RETENTION_DAYS, EventCounters
from tests.support.detail import expected_detail
from tests.support.events import ADDED, CALL, call_event
from tests.support.streams import campaign_events
from tests.test_lifecycle import POLICY

pytestmark = pytest.mark.stack


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def decoded(stream: list[dict[str, Any]]) -> list[CallEvent]:
    return [decode_event(orjson.dumps(event)) for event in stream]


async def detail(redis: Redis, layout: KeyLayout, clock: SettableClock) -> list[dict[str, Any]]:
    return await StatisticsReader(redis, layout).read_count_detail(1, today_in(GMT8, clock))


def buckets_of(redis: SyncRedis, structure: str) -> dict[str, tuple[bytes, int]]:
    """Every bucket of a structure: its encoding and its number of entries."""
    pattern = structure.replace("{", "\\{").replace("}", "\\}") + ":*"
    return {
        key.decode(): (redis.object("encoding", key), int(redis.hlen(key)))
        for key in redis.scan_iter(match=pattern, count=1000)
    }


@pytest.mark.anyio
async def test_a_growing_campaign_counts_exactly_through_hundreds_of_splits(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    clock = SettableClock()
    moment = int(clock() * 1000)
    # 6,000 records in 3 batches, most dialled once or twice: about 15,000 events.
    stream = campaign_events(1, "C1", ["b1", "b2", "b3"], 2000, moment_ms=moment)
    rng = random.Random(7)
    async with Redis.from_url(test_settings.redis_url) as redis:
        counter = event_counter(redis, clock=clock)
        layout = counter.layout
        # In order, in batches of every size (one batch adds 5,000 events: many splits at once),
        # then everything again, shuffled: each second copy must be a duplicate.
        start = 0
        for size in (1, 7, 300, 5000, 50, 9999):
            await counter.count(decoded(stream[start : start + size]))
            start += size
        again = stream[:]
        rng.shuffle(again)
        replayed = [
            await counter.count(decoded(again[i : i + 700])) for i in range(0, len(again), 700)
        ]
        assert sum(outcome.applied for outcome in replayed) == 0
        assert await detail(redis, layout, clock) == expected_detail(stream)

        records = len({event["dataId"] for event in stream})
        calls = len({event["callId"] for event in stream if event["eventType"] == CALL})
        assert await state_sizes(redis, layout, [(1, "C1")]) == [(records, calls)]
        sample = [event["dataId"] for event in stream[::97]]
        assert await records_known(redis, layout, 1, "C1", [*sample, "never-seen"]) == [
            *[True] * len(sample), False
        ]  # fmt: skip

    with SyncRedis.from_url(test_settings.redis_url) as sync:
        for structure, entries in ((layout.campaign_records(1, "C1"), records),
                                   (layout.campaign_calls(1, "C1"), calls)):  # fmt: skip
            buckets = buckets_of(sync, structure)
            # 1 + entries // fill buckets, every one a listpack, none near the listpack limit.
            assert len(buckets) == 1 + entries // BUCKET_FILL
            assert {encoding for encoding, _ in buckets.values()} == {b"listpack"}
            sizes = [size for _, size in buckets.values()]
            assert sum(sizes) == entries + 1  # and the size field in bucket 0
            assert max(sizes) < 128, max(sizes)
            assert (
                sync.hget(layout.bucket(structure, 0), BUCKET_SIZE_FIELD) == str(entries).encode()
            )
        # What the state costs per record (its state, its callIds, its day's flags): the
        # figure docs/capacity.md sizes Redis with, held here against a regression.
        state = sum(
            int(sync.memory_usage(key, samples=0) or 0)
            for pattern in (":records:*", ":calls:*", ":day:*:records:*")
            for key in sync.scan_iter(
                match=layout.campaign_base(1, "C1").replace("{", "\\{").replace("}", "\\}")
                + pattern,
                count=1000,
            )
        )
        assert state / records < 100, state / records


@pytest.mark.anyio
async def test_state_written_before_buckets_is_still_honoured_and_released(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    """A campaign counted by a version without buckets: its record states, callIds and day
    flags stand in a plain hash, a set and a plain hash at the structures' own keys. An upgraded
    worker counts none of those events again, counts new ones, and a release frees both."""
    clock = SettableClock()
    moment = int(clock() * 1000)
    added = call_event(ADDED, dataId="old-1", batchId=None, occurredAt=moment)
    old_call = call_event(CALL, dataId="old-1", batchId=None, callId="x-old", occurredAt=moment,
                          callStatus=5, final=False)  # fmt: skip
    new_call = call_event(CALL, dataId="old-1", batchId=None, callId="x-new", occurredAt=moment)
    async with Redis.from_url(test_settings.redis_url) as redis:
        counter: EventCounter = event_counter(redis, clock=clock)
        layout = counter.layout
        # Count with the engine, then move the state to where the old layout kept it.
        await counter.count(decoded([added, old_call]))
        label = today_in(GMT8, clock).isoformat()
        for structure, legacy_type in (
            (layout.campaign_records(1, "C1"), "hash"),
            (layout.campaign_calls(1, "C1"), "set"),
            (layout.day_records(1, "C1", label), "hash"),
        ):
            bucket = layout.bucket(structure, 0)
            stored: Any = await redis.hgetall(bucket)
            entries: Any = {k: v for k, v in stored.items() if k != BUCKET_SIZE_FIELD.encode()}
            await redis.delete(bucket)
            if legacy_type == "set":
                await redis.sadd(structure, *entries)
            else:
                await redis.hset(structure, mapping=entries)
        assert await state_sizes(redis, layout, [(1, "C1")]) == [(1, 1)]

        again = await counter.count(decoded([added, old_call, new_call]))
        assert (again.applied, again.duplicates) == (1, 2)
        assert await detail(redis, layout, clock) == expected_detail([added, old_call, new_call])

        lifecycle = CampaignLifecycle(redis, layout, POLICY, lambda vdn: GMT8, RETENTION_DAYS,
                                      clock)  # fmt: skip
        await lifecycle.delete(1, "C1")
        left = [key async for key in redis.scan_iter(match=f"{layout.prefix}:*")]
        assert left == [layout.campaign_life(1, "C1").encode()], left
