"""Redis at its memory limit, and a batch refused in part: nothing lost, nothing counted twice.

Redis runs with ``maxmemory-policy noeviction`` (isales_stats/commands/stack/redis.py): a full
Redis refuses writes rather than evict a counter. A real worker against a private Redis filled
to its limit stops counting, loses nothing, exports how full Redis is, and counts the rest
exactly once memory is added, with the group fully committed. Below it: a pipeline is not a
transaction, so a batch whose counting is refused for one campaign must store no resume point
past it (engine/counting.py, ``count``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ResponseError

from isales_stats.commands.stack.redis import LOCAL_MAXMEMORY
from isales_stats.core.events import decode_event
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from tests.support.app_client import serve, statistics_path
from tests.support.counting import EventCounters, count_events
from tests.support.credentials import ACCESS_KEY, SECRET_KEY, TEST_KEYS
from tests.support.detail import expected_detail, read_detail, read_detail_async
from tests.support.faults import assert_fully_committed, scrape_metric, wait_for_metrics
from tests.support.kafka_topics import publish
from tests.support.ports import free_port
from tests.support.private_redis import private_redis as own_redis
from tests.support.processes import ServiceProcess
from tests.support.streams import campaign_events, campaign_stream
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def private_redis(test_settings: Settings, tmp_path: Path) -> Any:
    with own_redis(test_settings, tmp_path / "stack") as (settings, _):
        yield settings


def test_the_local_stack_never_evicts_a_counter(test_settings: Settings) -> None:
    with Redis.from_url(test_settings.redis_url) as redis:
        config = redis.config_get("maxmemory*")
    assert config["maxmemory-policy"] == "noeviction"
    assert int(config["maxmemory"]) == int(LOCAL_MAXMEMORY.removesuffix("gb")) * 2**30


@pytest.mark.slow
def test_a_full_redis_stops_counting_loses_nothing_and_counts_on_when_memory_is_added(
    private_redis: Settings, tmp_path: Path
) -> None:
    settings = private_redis
    stream = campaign_stream(20_000, seed=31, now=datetime.now(UTC))
    first, second = stream[:10_000], stream[10_000:]
    port = free_port()
    publish(settings, first)
    with (
        ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=port) as worker,
        Redis.from_url(settings.redis_url) as redis,
    ):
        assert wait_for(lambda: read_detail(settings) == expected_detail(first), 60), worker.log()
        assert_fully_committed(settings, worker.log)  # the resume points are in too
        # Full: a limit below what Redis holds (noeviction: nothing may go to make room).
        keys_before = redis.dbsize()
        redis.config_set("maxmemory", int(redis.info("memory")["used_memory"]) // 2)
        publish(settings, second)
        wait_for_metrics(port)
        assert wait_for(lambda: scrape_metric(port, "isales_counting_retries_total") >= 2, 60), (
            worker.log()
        )
        # Refused, not evicted, not half counted: exactly the first half, every key still there.
        assert read_detail(settings) == expected_detail(first)
        assert redis.dbsize() == keys_before
        # What IsalesRedisMemoryFull sees (the worker reads INFO memory every 5 s).
        limit = int(redis.config_get("maxmemory")["maxmemory"])
        assert wait_for(lambda: scrape_metric(port, "isales_redis_maxmemory_bytes") == limit, 30)
        assert scrape_metric(port, "isales_redis_used_memory_bytes") / limit > 0.95

        redis.config_set("maxmemory", LOCAL_MAXMEMORY)
        assert wait_for(lambda: read_detail(settings) == expected_detail(stream), 90), worker.log()
        assert_fully_committed(settings, worker.log)
        assert read_detail(settings) == expected_detail(stream)
    assert "command not allowed when used memory > 'maxmemory'" in worker.log()


@pytest.mark.anyio
async def test_the_api_answers_signed_and_counted_while_redis_is_full(
    private_redis: Settings,
) -> None:
    """The statistics are served while Redis refuses writes: the admission script's few
    expiring writes (replay marker, flow-control counts) run even when Redis is full."""
    settings = private_redis.model_copy(
        update={
            "auth_enabled": True,
            "auth_keys": SecretStr(TEST_KEYS),
            "rate_limit_requests": 3,
        }
    )
    moment = int(datetime.now(UTC).timestamp() * 1000)
    c1 = campaign_events(1, "C1", ["b1"], 20, moment_ms=moment)
    await count_events(settings, c1)
    async with AsyncRedis.from_url(settings.redis_url) as redis:
        await redis.config_set("maxmemory", int((await redis.info("memory"))["used_memory"]) // 2)
        with pytest.raises(ResponseError, match="maxmemory"):
            await redis.set("anything", "1")
        async with serve(settings, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as client:
            answers = [(await client.get(statistics_path(1))) for _ in range(4)]
        await redis.config_set("maxmemory", LOCAL_MAXMEMORY)
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[0].json()["countDetail"] == expected_detail(c1)


@pytest.mark.anyio
async def test_a_batch_refused_for_one_campaign_stores_no_resume_point(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    """C2's counting fails (one of its keys holds the wrong type) while C1's succeeds in the
    same pipeline: the partition's offset is not stored, so a worker that restarts now reads
    the batch again. Once C2 can be counted, the same batch counts it, C1 once."""
    moment = int(datetime.now(UTC).timestamp() * 1000)
    c1 = campaign_events(1, "C1", ["b1"], 20, moment_ms=moment)
    c2 = campaign_events(1, "C2", ["b1"], 20, moment_ms=moment)
    batch = [decode_event(orjson.dumps(event)) for event in c1 + c2]
    offsets = {(test_settings.call_events_topic, 0): len(batch) - 1}
    layout = KeyLayout(test_settings.key_prefix)
    stored = layout.counted_offsets(test_settings.call_events_topic)
    async with AsyncRedis.from_url(test_settings.redis_url) as redis:
        counter = event_counter(redis)
        await redis.set(layout.campaign_batches(1, "C2"), "not a hash")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await counter.count(batch, offsets)
        assert not await redis.exists(stored)
        assert await read_detail_async(test_settings) == expected_detail(c1)  # C1's part went in

        await redis.delete(layout.campaign_batches(1, "C2"))
        again = await counter.count(batch, offsets)
        assert (again.applied, again.duplicates) == (len(c2), len(c1))
        assert await redis.hget(stored, "0") == str(len(batch) - 1).encode()
    assert await read_detail_async(test_settings) == expected_detail(c1 + c2)
