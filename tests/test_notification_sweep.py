"""The workers' sweep of time-based notifications (engine/notifications/sweep.py), on Redis.

A campaign with records left and no call for ISALES_STALL_MINUTES is notified stalled once,
however many sweeps (two at once included) look at it; a call counted then notifies resumed.
After the VDN's midnight, the day that ended is closed once, with its daily counters.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from isales_stats.core.decisions import AbandonLimit
from isales_stats.core.events import event_from_json
from isales_stats.core.keys import KeyLayout
from isales_stats.core.notification_kinds import notification_id
from isales_stats.core.reference_model import GMT8, NotificationModel, ReferenceModel
from isales_stats.core.settings import Settings
from isales_stats.engine.notifications.sweep import NotificationSweep
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


def _entries(raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[dict[str, Any]]:
    return [
        {
            "id": fields[b"id"].decode(),
            "type": fields[b"type"].decode(),
            "timestamp": fields[b"timestamp"].decode(),
            "data": orjson.loads(fields[b"data"]),
        }
        for _, fields in raw
    ]


def test_a_window_s_abandon_status_follows_time_and_the_outbox_stays_due(
    test_settings: Settings, event_counter: EventCounters, key_layout: KeyLayout
) -> None:
    """Over the limit in every window (4 abandoned of 104 live calls, 3 %); no call since. A
    day later today and the rolling 24 hours are back to ok, once however many sweeps run at
    once; 30 days later the rolling 30 days too. Each as the reference model's sweep predicts.
    A campaign whose outbox holds entries is put back in the due set by the sweep."""
    start = START - 86_400  # two days ago, 08:00 in GMT+8
    clock = SettableClock(start)
    at_ms = int(start * 1000)
    calls = [
        call_event(CALL, dataId=f"c{i}", callId=f"c{i}", final=False, occurredAt=at_ms)
        for i in range(100)
    ] + [
        call_event(
            CALL,
            dataId=f"a{i}",
            callId=f"a{i}",
            callStatus=5,
            failCode="00701",
            final=False,
            occurredAt=at_ms,
        )
        for i in range(4)
    ]
    limit = AbandonLimit(test_settings.abandon_limit_of(1), test_settings.abandon_warning_fraction)
    model = NotificationModel(ReferenceModel(lambda _: GMT8), lambda _: limit)

    async def scenario() -> None:
        redis = Redis.from_url(test_settings.redis_url)
        try:
            counter = event_counter(redis, clock=clock)
            context = EventCounters(test_settings).context(clock=clock)
            sweep = NotificationSweep(redis, context, stall_minutes=10)
            await counter.count([event_from_json(e) for e in calls])
            model.count(calls, at_ms)
            for later in (60.0, 25 * 3600.0, 31 * 86_400.0):
                clock.now = start + later
                await asyncio.gather(sweep.sweep(), sweep.sweep(), sweep.sweep())
                model.sweep(1, "C1", int(clock.now * 1000))
            raw: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(  # type: ignore[assignment]
                key_layout.campaign_outbox(1, "C1")
            )
            abandon = [e for e in _entries(raw) if e["type"].startswith("abandon.")]
            predicted = model.outbox(1, "C1")
            # The ids differ by the day.closed entries the model does not predict.
            assert [{**e, "id": ""} for e in abandon] == [{**e, "id": ""} for e in predicted]
            assert [(e["type"], e["data"]["window"]) for e in abandon] == [
                ("abandon.over", "today"),
                ("abandon.over", "rolling24h"),
                ("abandon.over", "rolling30d"),
                ("abandon.ok", "today"),
                ("abandon.ok", "rolling24h"),
                ("abandon.ok", "rolling30d"),
            ]
            assert abandon[4]["data"] == {
                "vdnId": 1,
                "campaignId": "C1",
                "window": "rolling24h",
                "abandoned": 0,
                "denominator": 0,
                "ratePercent": None,
                "limitPercent": 3.0,
            }
            ids = [e["id"] for e in _entries(raw)]
            assert len(set(ids)) == len(ids)

            await redis.delete(key_layout.outbox_due())
            await sweep.sweep()
            assert await redis.zrange(key_layout.outbox_due(), 0, -1) == [b"1:C1"]
        finally:
            await redis.aclose()

    asyncio.run(scenario())


def test_days_missed_while_workers_were_down_are_closed_in_order(
    test_settings: Settings, event_counter: EventCounters, key_layout: KeyLayout
) -> None:
    """Counters on three days; the sweep closes the first, then runs again only two days
    later: both days missed are closed, oldest first, each once."""
    first_day = START - 2 * 86_400  # three days ago, 08:00 in GMT+8
    clock = SettableClock(first_day)

    async def scenario() -> None:
        redis = Redis.from_url(test_settings.redis_url)
        try:
            counter = event_counter(redis, clock=clock)
            context = EventCounters(test_settings).context(clock=clock)
            sweep = NotificationSweep(redis, context, stall_minutes=100_000)
            for n in range(3):
                clock.now = first_day + n * 86_400
                event = call_event(ADDED, dataId=f"d{n}", occurredAt=int(clock.now * 1000))
                await counter.count([event_from_json(event)])
                if n == 0:
                    clock.now = first_day + 86_400 - 60  # 07:59 the next day: closed the first
                    await sweep.sweep()
            clock.now = first_day + 3 * 86_400
            await sweep.sweep()
            await sweep.sweep()
            raw: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(  # type: ignore[assignment]
                key_layout.campaign_outbox(1, "C1")
            )
            closed = [(e["type"], e["data"]["day"]) for e in _entries(raw)]
            days = [
                datetime.fromtimestamp(first_day + n * 86_400, UTC).date().isoformat()
                for n in range(3)
            ]
            assert closed == [("day.closed", day) for day in days]
        finally:
            await redis.aclose()

    asyncio.run(scenario())
