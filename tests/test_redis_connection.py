"""Scripts survive Redis forgetting them (a restart, a new cluster node): NOSCRIPT reloads."""

from __future__ import annotations

import asyncio
from datetime import date

import orjson
import pytest
from redis import Redis
from redis.asyncio.cluster import RedisCluster

from isales_stats.core.events import decode_event
from isales_stats.core.settings import Settings
from isales_stats.engine.redis_connection import connect
from isales_stats.engine.statistics import StatisticsReader
from tests.support.counting import EventCounters
from tests.support.events import ADDED, call_event


def test_a_cluster_url_gives_a_cluster_client_and_a_plain_one_a_plain_client() -> None:
    cluster = Settings(redis_url="redis+cluster://127.0.0.1:7000")
    assert isinstance(connect(cluster), RedisCluster)
    assert not isinstance(connect(Settings(redis_url="redis://127.0.0.1:6379/0")), RedisCluster)


@pytest.mark.stack
def test_counting_and_reading_work_after_the_script_cache_is_flushed(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    event = decode_event(orjson.dumps(call_event(ADDED, occurredAt="2026-11-28T10:00:00+08:00")))

    async def run() -> int:
        redis = connect(test_settings)
        async with redis:
            counter = event_counter(redis)
            with Redis.from_url(test_settings.redis_url) as sync_redis:
                sync_redis.script_flush()
            await counter.count([event])
            with Redis.from_url(test_settings.redis_url) as sync_redis:
                sync_redis.script_flush()
            reader = StatisticsReader(redis, counter.context)
            detail = await reader.read_count_detail(1, date(2026, 11, 28))
            return int(detail[0]["totalCount"])

    assert asyncio.run(run()) == 1
