"""The workers' sweep of time-based notifications (engine/notification_sweep.py), on Redis.

A campaign with records left and no call for ISALES_STALL_MINUTES is notified stalled once,
however many sweeps (two at once included) look at it; a call counted then notifies resumed.
After the VDN's midnight, the day that ended is closed once, with its daily counters.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import orjson
import pytest
from redis.asyncio import Redis

from isales_stats.core.events import event_from_json
from isales_stats.core.keys import KeyLayout
from isales_stats.core.notification_kinds import notification_id
from isales_stats.core.settings import Settings
from isales_stats.engine.notification_sweep import NotificationSweep
from tests.support.clock import SettableClock
from tests.support.counting import EventCounters
from tests.support.events import ADDED, CALL, call_event

pytestmark = pytest.mark.stack

# Yesterday's 00:00 UTC, 08:00 in GMT+8: recent, or the day's keys would expire at once.
START = float((time.time() // 86_400 - 1) * 86_400)
DAY = datetime.fromtimestamp(START, UTC).date().isoformat()


def test_stalled_once_then_resumed_and_the_day_closed_once(
    test_settings: Settings, event_counter: EventCounters, key_layout: KeyLayout
) -> None:
    clock = SettableClock(START)
    at_ms = int(START * 1000)
    first = [
        call_event(ADDED, dataId="d1", occurredAt=at_ms),
        call_event(ADDED, dataId="d2", occurredAt=at_ms),
        call_event(CALL, dataId="d1", callId="x1", occurredAt=at_ms),
    ]

    async def scenario() -> None:
        redis = Redis.from_url(test_settings.redis_url)
        try:
            counter = event_counter(redis, clock=clock)
            context = EventCounters(test_settings).context(clock=clock)
            sweep = NotificationSweep(redis, context, stall_minutes=10)
            await counter.count([event_from_json(e) for e in first])
            clock.advance(5 * 60)
            assert await sweep.sweep() == []
            clock.advance(6 * 60)
            results = await asyncio.gather(sweep.sweep(), sweep.sweep(), sweep.sweep())
            assert sorted(map(len, results)) == [0, 0, 1]
            later = call_event(CALL, dataId="d2", callId="x2", occurredAt=int(clock.now * 1000))
            await counter.count([event_from_json(later)])
            clock.now = START + 86_400  # the next day, 08:00 in GMT+8
            await sweep.sweep()
            await sweep.sweep()
            entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(  # type: ignore[assignment]
                key_layout.campaign_outbox(1, "C1")
            )
            written = [
                (fields[b"id"].decode(), fields[b"type"].decode(), orjson.loads(fields[b"data"]))
                for _, fields in entries
            ]
            assert [(i, kind) for i, kind, _ in written] == [
                (notification_id(1, "C1", 1), "campaign.stalled"),
                (notification_id(1, "C1", 2), "campaign.resumed"),
                (notification_id(1, "C1", 3), "campaign.finished"),
                (notification_id(1, "C1", 4), "day.closed"),
            ]
            assert written[3][2] == {
                "vdnId": 1,
                "campaignId": "C1",
                "dailyCalledCount": 2,
                "dailyCallSucc": 2,
                "dailyFinishCount": 2,
                "dailyCount": 2,
                "day": DAY,
            }
            assert await redis.zrange(key_layout.outbox_due(), 0, -1) == [b"1:C1"]
        finally:
            await redis.aclose()

    asyncio.run(scenario())
