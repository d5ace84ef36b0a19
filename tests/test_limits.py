"""Caps on producer input: campaigns per VDN and batches per campaign (engine/counting.py).

A producer that opens campaigns or batches without end (a bug, or a hostile one) would grow a
VDN's index and the whole-VDN read without bound. Beyond a cap, events go to the dead-letter
topic with category ``limit`` and a reason naming the setting; they are never counted, and what
fits is counted exactly as without the caps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from isales_stats.core.days import today_in
from isales_stats.core.events import decode_event
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.counting import CountingLimits
from isales_stats.engine.statistics import StatisticsReader
from tests.support.clock import GMT8, now_ms
from tests.support.counting import EventCounters
from tests.support.detail import expected_detail, read_detail
from tests.support.kafka_topics import publish, read_dead_letters, wait_until_committed
from tests.support.processes import ServiceProcess
from tests.support.streams import campaign_events
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack


def stream_beyond_the_caps() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(events within two campaigns per VDN and two batches per campaign, events beyond)."""
    moment = now_ms()
    c1 = campaign_events(1, "C1", ["b1", "b2", None], 4, moment_ms=moment)
    c1_third_batch = campaign_events(1, "C1", ["b3"], 3, moment_ms=moment, seed=2)
    c2 = campaign_events(1, "C2", ["b1"], 5, moment_ms=moment)
    c3 = campaign_events(1, "C3", ["b1"], 3, moment_ms=moment)
    # Sent after the others are counted: campaigns are on different partitions, read in no
    # defined order, so which campaign is the third is only defined by time.
    return c1 + c2, c1_third_batch + c3


def test_events_beyond_a_cap_are_dead_lettered_with_the_reason_and_never_counted(
    test_settings: Settings, tmp_path: Path
) -> None:
    within, beyond = stream_beyond_the_caps()
    expected = expected_detail(within)
    publish(test_settings, within)
    with ServiceProcess(
        test_settings,
        "worker",
        log_dir=tmp_path,
        worker_metrics_port=0,
        max_campaigns_per_vdn=2,
        max_batches_per_campaign=2,
    ) as worker:
        assert wait_for(lambda: read_detail(test_settings) == expected, 30), worker.log()
        publish(test_settings, beyond)
        letters = read_dead_letters(test_settings, len(beyond))
        assert len(letters) == len(beyond), worker.log()
        assert wait_until_committed(test_settings) == {}
        assert read_detail(test_settings) == expected

    headers = [dict(letter.headers) for letter in letters]
    assert {h["x-dead-letter-category"] for h in headers} == {b"limit"}
    reasons = sorted({h["x-dead-letter-reason"].decode() for h in headers})
    assert reasons == [
        "VDN 1 has 2 campaigns already: campaign 'C3' is beyond ISALES_MAX_CAMPAIGNS_PER_VDN",
        "campaign 'C1' of VDN 1 has 2 batches already: batch 'b3' is beyond "
        "ISALES_MAX_BATCHES_PER_CAMPAIGN",
    ]
    # Nothing of C3 exists, not even in the VDN's index; C1 has its two batches and no third.
    layout = KeyLayout(test_settings.key_prefix)
    with SyncRedis.from_url(test_settings.redis_url) as redis:
        assert redis.smembers(layout.vdn_campaigns(1)) == {b"C1", b"C2"}
        assert redis.hkeys(layout.campaign_batches(1, "C1")) == [b"b1", b"b2"]
        assert not redis.keys(layout.campaign_base(1, "C3") + "*")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_cap_holds_when_the_same_events_come_again(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    """Redelivered after a crash (to a new process, which remembers no listed campaign),
    events beyond a cap are refused again and those within are duplicates: the counters hold."""
    within, beyond_the_caps = stream_beyond_the_caps()
    stream = within + beyond_the_caps
    events = [decode_event(orjson.dumps(event)) for event in stream]
    limits = CountingLimits(campaigns_per_vdn=2, batches_per_campaign=2)
    async with Redis.from_url(test_settings.redis_url) as redis:
        first = await event_counter(redis, limits=limits).count(events)
        counter = event_counter(redis, limits=limits)
        again = await counter.count(events)
        reader = StatisticsReader(redis, counter.context)
        counted = await reader.read_count_detail(1, today_in(GMT8))
    beyond = len(stream) - len(within)
    assert (len(first.over_limit), len(again.over_limit)) == (beyond, beyond)
    assert again.applied == 0
    assert again.duplicates == len(within)
    assert counted == expected_detail(within)
