"""VDN 1's countDetail today: what the reference model expects of a stream, what Redis holds.

The end-to-end and fault tests compare the two; ``distinct_identities_counted`` tells them
(and the benchmarks) how far a worker has got meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis import Redis

from isales_stats.core.days import today_in
from isales_stats.core.keys import KeyLayout
from isales_stats.core.reference_model import reference_statistics
from isales_stats.core.settings import Settings
from isales_stats.engine.context import CountingContext
from isales_stats.engine.redis_connection import connect
from isales_stats.engine.statistics import StatisticsReader
from tests.support.clock import GMT8
from tests.support.state import state_sizes


def expected_detail(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """VDN 1's countDetail today by the reference model (isales_stats.core.reference_model)."""
    return reference_statistics(stream, default_zone=GMT8).count_detail(1, today_in(GMT8))


def read_detail(settings: Settings, campaign_id: str | None = None) -> list[dict[str, Any]]:
    """VDN 1's countDetail today as the engine has counted it, read from Redis: its live
    campaigns, or the one named."""
    return asyncio.run(read_detail_async(settings, campaign_id))


async def read_detail_async(
    settings: Settings, campaign_id: str | None = None
) -> list[dict[str, Any]]:
    """``read_detail`` for a test that runs in an event loop already."""
    async with connect(settings) as redis:  # the engine's own way: TLS and ACL users too
        reader = StatisticsReader(redis, CountingContext.from_settings(settings))
        return await reader.read_count_detail(1, today_in(GMT8), campaign_id)


def identities_in(stream: list[dict[str, Any]]) -> int:
    """What the engine records once ``stream`` is counted: every record and every callId."""
    records = {(event["campaignId"], event["dataId"]) for event in stream}
    calls = {(event["campaignId"], event["callId"]) for event in stream if "callId" in event}
    return len(records) + len(calls)


def distinct_identities_counted(settings: Settings, campaigns: list[str]) -> int:
    """Records and calls the engine has recorded so far: a progress gauge (tests, benchmarks)."""
    layout = KeyLayout(settings.key_prefix)
    with Redis.from_url(settings.redis_url) as redis:
        sizes = state_sizes(redis, layout, [(1, campaign) for campaign in campaigns])
    return sum(records + calls for records, calls in sizes)
