"""Steady traffic over simulated days: campaigns that open, are dialled and end, every day.

What Redis holds over time, with the lifecycle on an injected clock: the 90-day benchmark
(benchmarks/lifecycle.py) and a short test of the same shape (tests/test_lifecycle_memory.py)
share it. Events are counted in-process by EventCounter, the lifecycle sweeps every simulated
evening on the same clock, and since Redis' own clock cannot move, the keys whose expiry has
passed on the simulated clock are unlinked by hand each day, as Redis would have expired them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from isales_stats.core.days import DAY_SECONDS
from isales_stats.core.events import event_from_json
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.context import CountingContext
from isales_stats.engine.counting import NO_LIMITS, EventCounter
from isales_stats.engine.lifecycle import CampaignLifecycle
from isales_stats.engine.state import state_sizes
from tests.support.clock import GMT8, SettableClock


@dataclass(frozen=True)
class TrafficShape:
    """Every simulated day ``campaigns_per_day`` campaigns are imported and dialled once a day
    for ``dialling_days`` days, each record until an attempt connects; then they close."""

    days: int = 90
    campaigns_per_day: int = 4
    records_per_campaign: int = 2500
    batches: int = 5
    dialling_days: int = 3  # the day of its import and the two after it
    dialling_hours: tuple[int, int] = (9, 21)  # local time: imports at 09:00, calls until 21:00
    connected: float = 0.45  # chance that an attempt connects (the record is then done)

    @property
    def dialling_minutes(self) -> int:
        return (self.dialling_hours[1] - self.dialling_hours[0]) * 60

    def horizon_days(self, retention_days: int) -> int:
        """Days after which every key of a campaign opened on day 0 is gone again: its
        dialling, the grace (a day), the retention, and the sweep's day."""
        return self.dialling_days + 1 + retention_days + 1


@dataclass
class Campaign:
    name: str
    opened: int  # the simulated day of its import
    # dataId -> its batch, and the records still to dial (not connected yet)
    batch_of: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)


@dataclass
class Day:
    day: int
    events: int
    live_records: int
    used_memory: int
    dataset: int  # MEMORY USAGE of every key of ours
    state: int  # of it: the idempotence state (records, callIds, day records) of live campaigns
    keys: int
    released: int
    deleted: int


async def simulate(
    settings: Settings, shape: TrafficShape, report: Callable[[Day], None] = lambda day: None
) -> tuple[list[Day], int, dict[str, tuple[int, int]]]:
    """Count ``shape.days`` of traffic into the (empty, private) Redis of ``settings``; the
    days measured, used_memory of the empty Redis, and the last day's breakdown."""
    layout = KeyLayout(settings.key_prefix)
    zone = GMT8
    # Day 0 starts at the next midnight in the VDN's zone.
    start = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    start += timedelta(days=1)
    clock = SettableClock(start.timestamp())
    # The settings' retention and lifecycle, with one zone, this clock and no counting limits.
    context = CountingContext.from_settings(
        settings, zone_of=lambda vdn: zone, clock=clock, limits=NO_LIMITS
    )
    rng = random.Random(90)
    campaigns: list[Campaign] = []
    days: list[Day] = []
    async with Redis.from_url(settings.redis_url) as redis:
        await redis.flushall()
        empty = int((await redis.info("memory"))["used_memory"])
        counter = EventCounter(redis, context)
        lifecycle = CampaignLifecycle(redis, context)
        released = deleted = 0
        for day in range(shape.days):
            day_start = start.timestamp() + day * DAY_SECONDS
            imports, attempts, closes = _events_of_day(day, campaigns, rng, shape)
            rng.shuffle(attempts)  # a dialler interleaves its campaigns
            # Imports at the start of the dialling hours, attempts spread over their minutes
            # (the progress streams grow a minute at a time), the day's closes at their end.
            plan = [(shape.dialling_hours[0] * 3600, imports)]
            plan += [
                (
                    shape.dialling_hours[0] * 3600 + minute * 60,
                    attempts[minute :: shape.dialling_minutes],
                )
                for minute in range(shape.dialling_minutes)
            ]
            plan.append((shape.dialling_hours[1] * 3600, closes))
            for offset, events in plan:
                clock.now = day_start + offset
                stamp = int(clock() * 1000)
                for first in range(0, len(events), 5000):
                    await counter.count([
                        event_from_json({**event, "occurredAt": stamp})
                        for event in events[first : first + 5000]
                    ])  # fmt: skip
            counted = len(imports) + len(attempts) + len(closes)
            campaigns = [c for c in campaigns if day - c.opened < shape.dialling_days - 1]
            # The sweep of the evening, then what Redis would have expired by then.
            clock.now = day_start + 22 * 3600
            for step in (await lifecycle.sweep()).steps:
                released += step.state == "released"
                deleted += step.state == "deleted" and step.keys_removed > 0
            await _expire(redis, clock())
            days.append(await _measure(redis, layout, day, counted, released, deleted))
            report(days[-1])
        breakdown = await _breakdown(redis, layout)
    return days, empty, breakdown


def _events_of_day(
    day: int, campaigns: list[Campaign], rng: random.Random, shape: TrafficShape
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Today's imports of new campaigns, an attempt for each record still waiting of the
    campaigns being dialled, and the closes of those on their last day (unstamped)."""
    imports: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    closes: list[dict[str, Any]] = []
    for index in range(shape.campaigns_per_day):
        campaign = Campaign(f"D{day:03d}-{index}", day)
        for record in range(shape.records_per_campaign):
            data_id = f"r{record:05d}"
            campaign.batch_of[data_id] = f"b{record % shape.batches}"
            campaign.waiting.append(data_id)
            imports.append({"eventType": "data.added", "vdnId": 1, "campaignId": campaign.name,
                            "dataId": data_id, "batchId": campaign.batch_of[data_id]})  # fmt: skip
        campaigns.append(campaign)
    for campaign in campaigns:
        attempt = day - campaign.opened
        last = attempt == shape.dialling_days - 1
        still_waiting = []
        for data_id in campaign.waiting:
            connected = rng.random() < shape.connected
            attempts.append({"eventType": "call.result", "vdnId": 1,
                             "campaignId": campaign.name, "dataId": data_id,
                             "batchId": campaign.batch_of[data_id],
                             "callId": f"{campaign.name}-{data_id}-{attempt}",
                             "callStatus": 6 if connected else 5,
                             "final": connected or last})  # fmt: skip
            if not connected:
                still_waiting.append(data_id)
        campaign.waiting = still_waiting
        if last:
            closes.append({"eventType": "campaign.closed", "vdnId": 1,
                           "campaignId": campaign.name})  # fmt: skip
    return imports, attempts, closes


async def _keys(redis: Redis) -> list[str]:
    return [key.decode() async for key in redis.scan_iter(count=2000)]


async def _expire(redis: Redis, now: float) -> None:
    """Unlink the keys whose expiry has passed on the simulated clock."""
    keys = await _keys(redis)
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.expiretime(key)
        expiries = await pipe.execute()
    due = [key for key, at in zip(keys, expiries, strict=True) if 0 < int(at) <= now]
    for first in range(0, len(due), 1000):
        await redis.unlink(*due[first : first + 1000])


async def _key_sizes(redis: Redis) -> dict[str, int]:
    """Every key -> its MEMORY USAGE in bytes (exact: every element counted)."""
    keys = await _keys(redis)
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes = await pipe.execute()
    return {key: int(size or 0) for key, size in zip(keys, sizes, strict=True)}


async def _measure(
    redis: Redis, layout: KeyLayout, day: int, events: int, released: int, deleted: int
) -> Day:
    sizes = await _key_sizes(redis)
    state = sum(size for key, size in sizes.items() if _is_state(key))
    campaigns = sorted(
        (1, _campaign_of(key)) for key in sizes if key.rsplit("}", 1)[-1] == ":records"
    )
    live_records = sum(records for records, _ in await state_sizes(redis, layout, campaigns))
    used = int((await redis.info("memory"))["used_memory"])
    return Day(
        day, events, live_records, used, sum(sizes.values()), state, len(sizes), released, deleted
    )


async def _breakdown(redis: Redis, layout: KeyLayout) -> dict[str, tuple[int, int]]:
    """What Redis holds, by kind: kind -> (bytes by MEMORY USAGE, how many of the unit)."""
    sizes = await _key_sizes(redis)
    keys = list(sizes)
    campaigns = sorted({_campaign_of(key) for key in keys if "}" in key})
    async with redis.pipeline(transaction=False) as pipe:
        for campaign in campaigns:
            pipe.hmget(layout.campaign_life(1, campaign), ["released", "deleted"])
        lives = dict(zip(campaigns, await pipe.execute(), strict=True))
    state_of = {
        c: "deleted" if deleted else "released" if released else "live"
        for c, (released, deleted) in lives.items()
    }
    kinds = {
        "the idempotence state, per live record": 0,
        "a live campaign's counters (hashes, rows, batch index, progress stream, lifecycle)": 0,
        "a released campaign's final counters (packed rows) and lifecycle": 0,
        "a deleted campaign's tombstone": 0,
        "the indexes, the schedule, the resume points": 0,
    }
    names = list(kinds)
    for key, size in sizes.items():
        if "}" not in key:
            kinds[names[4]] += size
        elif _is_state(key):
            kinds[names[0]] += size
        else:
            kinds[names[{"live": 1, "released": 2, "deleted": 3}[state_of[_campaign_of(key)]]]] += (
                size
            )
    counts = {state: sum(1 for s in state_of.values() if s == state)
              for state in ("live", "released", "deleted")}  # fmt: skip
    records = sum(n for n, _ in await state_sizes(redis, layout, [(1, c) for c in campaigns]))
    units = [records, counts["live"], counts["released"], counts["deleted"], 1]
    return {name: (kinds[name], unit) for name, unit in zip(names, units, strict=True)}


def _campaign_of(key: str) -> str:
    return key.split("{", 1)[1].split("}", 1)[0].partition(":")[2]


def _is_state(key: str) -> bool:
    """A key of a campaign's idempotence state (what a release frees)."""
    suffix = key.rsplit("}", 1)[-1]
    return suffix in (":records", ":calls") or (
        suffix.startswith(":day:") and suffix.endswith(":records")
    )
