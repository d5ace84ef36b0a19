"""Key layout (one Cluster slot per campaign) and the daily buckets: midnight, expiry, age."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any

import orjson
import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.crc import key_slot

from isales_stats.core.days import day_expiry, today_in
from isales_stats.core.events import decode_event
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.context import CountingContext
from isales_stats.engine.statistics import StatisticsReader
from tests.support.clock import GMT8
from tests.support.counting import EventCounters
from tests.support.events import CALL, call_event


def every_key_of_a_campaign(layout: KeyLayout, vdn: int, campaign: str) -> list[str]:
    day = "2026-11-28"
    return [
        layout.campaign_totals(vdn, campaign),
        layout.campaign_day(vdn, campaign, day),
        layout.campaign_batches(vdn, campaign),
        layout.batch_totals(vdn, campaign, "B:1"),
        layout.batch_day(vdn, campaign, "B:1", day),
        layout.campaign_rows(vdn, campaign),
        layout.day_rows(vdn, campaign, day),
        layout.campaign_records(vdn, campaign),
        layout.campaign_calls(vdn, campaign),
        layout.day_records(vdn, campaign, day),
        layout.campaign_progress(vdn, campaign),
        layout.campaign_progress_current(vdn, campaign),
    ]


@pytest.mark.parametrize("campaign", ["1798316116", "camp:with:colons", "中文活动"])
def test_every_key_of_a_campaign_lives_in_one_cluster_slot(campaign: str) -> None:
    keys = every_key_of_a_campaign(KeyLayout("isales"), 42, campaign)
    assert len({key_slot(key.encode()) for key in keys}) == 1


def at(moment: str) -> Any:
    return lambda: datetime.fromisoformat(moment).timestamp()


def call(call_id: str, occurred_at: str, data_id: str = "d1") -> dict[str, Any]:
    """A connected, final call of record ``data_id`` (VDN 1, campaign C1, batch B1)."""
    return call_event(CALL, dataId=data_id, batchId="B1", callId=call_id, occurredAt=occurred_at)


def count(settings: Settings, events: list[dict[str, Any]], clock: Any) -> Any:
    async def run() -> Any:
        async with AsyncRedis.from_url(settings.redis_url) as redis:
            counter = EventCounters(settings)(redis, clock=clock)
            return await counter.count([decode_event(orjson.dumps(e)) for e in events])

    return asyncio.run(run())


def read(settings: Settings, clock: Any) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with AsyncRedis.from_url(settings.redis_url) as redis:
            reader = StatisticsReader(redis, CountingContext.from_settings(settings))
            detail = await reader.read_count_detail(1, today_in(GMT8, clock))
            return detail[0]

    return asyncio.run(run())


@pytest.mark.stack
def test_daily_counters_read_zero_at_midnight_and_keep_their_day(test_settings: Settings) -> None:
    count(
        test_settings, [call("x1", "2026-11-28T23:59:59.999+08:00")], at("2026-11-29T01:00+08:00")
    )
    before = read(test_settings, at("2026-11-28T23:59:59.999+08:00"))
    after = read(test_settings, at("2026-11-29T00:00:00.000+08:00"))
    assert (before["dailyCalledCount"], before["dailyCount"]) == (1, 1)
    assert (after["dailyCalledCount"], after["dailyCount"], after["dailyFinishCount"]) == (0, 0, 0)
    assert (after["totalCalledCount"], after["totalFinishCount"]) == (1, 1)
    # A late event of yesterday, counted after midnight, lands on yesterday.
    count(
        test_settings, [call("x2", "2026-11-28T12:00:00+08:00", "d2")], at("2026-11-29T02:00+08:00")
    )
    assert read(test_settings, at("2026-11-28T23:00+08:00"))["dailyCalledCount"] == 2
    assert read(test_settings, at("2026-11-29T02:00+08:00"))["dailyCalledCount"] == 0


@pytest.mark.stack
def test_daily_keys_expire_after_the_retention_and_old_events_count_in_totals(
    test_settings: Settings,
) -> None:
    layout = KeyLayout(test_settings.key_prefix)
    now = at("2026-11-28T12:00+08:00")
    outcome = count(
        test_settings,
        [call("x1", "2026-11-28T09:00:00+08:00"), call("x2", "2026-10-01T09:00:00+08:00", "d2")],
        now,
    )
    assert outcome.too_old == 1  # 58 days old with a 40-day retention: totals only
    with Redis.from_url(test_settings.redis_url) as redis:
        expire_at = redis.expiretime(layout.campaign_day(1, "C1", "2026-11-28"))
        assert redis.expiretime(layout.day_records(1, "C1", "2026-11-28")) == expire_at
        assert redis.expiretime(layout.batch_day(1, "C1", "B1", "2026-11-28")) == expire_at
        assert redis.expiretime(layout.day_rows(1, "C1", "2026-11-28")) == expire_at
        assert not redis.exists(layout.day_rows(1, "C1", "2026-10-01"))
        assert redis.ttl(layout.campaign_rows(1, "C1")) == -1
        assert not redis.exists(layout.campaign_day(1, "C1", "2026-10-01"))
        assert redis.ttl(layout.campaign_totals(1, "C1")) == -1  # totals never expire
    # The end of 2026-11-28 in GMT+08:00, plus 40 days.
    assert expire_at == int(datetime.fromisoformat("2027-01-08T00:00+08:00").timestamp())
    assert expire_at == day_expiry(date(2026, 11, 28), GMT8, 40)
    assert read(test_settings, now)["totalCalledCount"] == 2


def test_today_follows_the_zone_of_the_vdn() -> None:
    settings = Settings(vdn_time_zones="7=-05:00")  # type: ignore[arg-type]
    moment = at("2026-11-28T20:00:00+00:00")  # 04:00 on the 29th in GMT+08:00
    assert today_in(settings.time_zone_of(1), moment) == date(2026, 11, 29)
    assert today_in(settings.time_zone_of(7), moment) == date(2026, 11, 28)
    assert settings.time_zone_of(7).utcoffset(None) == timedelta(hours=-5)


@pytest.mark.stack
def test_the_lua_script_writes_exactly_the_keys_the_layout_spells(test_settings: Settings) -> None:
    events = [
        call("x1", "2026-11-28T09:00:00+08:00"),
        {**call("x2", "2026-11-28T09:00:00+08:00", "d2"), "callStatus": 5, "final": False},
    ]
    count(test_settings, events, at("2026-11-28T09:00:30+08:00"))
    count(
        test_settings,
        [call("x3", "2026-11-28T09:01:00+08:00", "d3")],
        at("2026-11-28T09:01:10+08:00"),
    )
    layout = KeyLayout(test_settings.key_prefix)
    day = "2026-11-28"
    spelled = {
        layout.vdn_campaigns(1),
        layout.campaign_totals(1, "C1"),
        layout.campaign_day(1, "C1", day),
        layout.campaign_batches(1, "C1"),
        layout.batch_totals(1, "C1", "B1"),
        layout.batch_day(1, "C1", "B1", day),
        layout.campaign_rows(1, "C1"),
        layout.day_rows(1, "C1", day),
        layout.campaign_records(1, "C1"),
        layout.campaign_calls(1, "C1"),
        layout.day_records(1, "C1", day),
        layout.campaign_progress(1, "C1"),
        layout.campaign_progress_current(1, "C1"),
        layout.campaign_changes(1, "C1"),
        layout.campaign_life(1, "C1"),
        layout.lifecycle_schedule(),
        *(
            key
            for batch in (None, "B1")
            for key in (
                layout.day_hours(1, "C1", day, batch),
                layout.day_fails(1, "C1", day, batch),
                layout.scope_window(1, "C1", batch),
            )
        ),
    }
    with Redis.from_url(test_settings.redis_url) as redis:
        written = {key.decode() for key in redis.scan_iter(match=f"{layout.prefix}:*")}
        minute = int(datetime.fromisoformat("2026-11-28T09:00+08:00").timestamp()) * 1000
        entries = redis.xrange(layout.campaign_progress(1, "C1"))
        current = redis.hgetall(layout.campaign_progress_current(1, "C1"))
    assert written == spelled
    # The 09:00 minute closed when the 09:01 batch came: two calls, one connect, one finished.
    assert entries == [
        (f"{minute}-0".encode(), {b"calls": b"2", b"connects": b"1", b"finished": b"1"})
    ]
    assert current == {b"minute": str(minute + 60_000).encode(), b"calls": b"1",
                       b"connects": b"1", b"finished": b"1"}  # fmt: skip
