"""The counting rules in Redis against the reference model, on many small generated streams."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from isales_stats.core.events import decode_event
from isales_stats.core.reference_model import reference_statistics
from isales_stats.core.settings import Settings
from isales_stats.engine.counting import CountingOutcome
from isales_stats.engine.history import HistoryReader
from isales_stats.engine.statistics import StatisticsReader
from tests.support.cleanup import delete_keys
from tests.support.clock import GMT8
from tests.support.counting import EventCounters
from tests.support.strategies import VDN_ZONES, contradicting, delivered, records, zone_of

pytestmark = pytest.mark.stack

# A clock after every generated event: nothing is in the future or older than the retention.
QUERY_CLOCK = datetime(2026, 11, 30, 12, 0, tzinfo=GMT8).timestamp
DAYS = [date(2026, 11, 25) + timedelta(days=n) for n in range(6)]
_prefixes = itertools.count()


def count_and_read(
    settings: Settings,
    event_counter: EventCounters,
    events: Sequence[dict[str, Any]],
    batch_sizes: Sequence[int],
) -> tuple[list[CountingOutcome], dict[tuple[int, date], list[dict[str, Any]]]]:
    """Count ``events`` in batches of the given sizes, then read every VDN on every day."""
    prefix = f"{settings.key_prefix}:{next(_prefixes)}"

    async def run() -> tuple[list[CountingOutcome], dict[tuple[int, date], list[dict[str, Any]]]]:
        redis = Redis.from_url(settings.redis_url)
        async with redis:
            counter = event_counter(redis, key_prefix=prefix, zone_of=zone_of, clock=QUERY_CLOCK)
            decoded = [decode_event(orjson.dumps(event)) for event in events]
            outcomes = []
            start = 0
            for size in itertools.cycle(batch_sizes):
                if start >= len(decoded):
                    break
                outcomes.append(await counter.count(decoded[start : start + size]))
                start += size
            reader = StatisticsReader(redis, counter.context)
            views = {
                (vdn, day): await reader.read_count_detail(vdn, day)
                for vdn in VDN_ZONES
                for day in DAYS
            }
            return outcomes, views

    try:
        return asyncio.run(run())
    finally:
        delete_keys(settings.redis_url, prefix)


# What history reads of a scope on a day: its daily counters, call totals at the day's end,
# failed calls by failCode, and the daily counters per hour (hours with something counted).
DayView = tuple[dict[str, int], dict[str, int], dict[str, int], dict[int, dict[str, int]]]
Scope = tuple[int, str, str | None, date]  # vdnId, campaignId, batchId or None, day
SCOPES = [
    (vdn, campaign, batch)
    for vdn in VDN_ZONES
    for campaign in ("C1", "C2", "C3")
    for batch in (None, "B1", "B2")
]


def count_and_read_history(
    settings: Settings, event_counter: EventCounters, events: Sequence[dict[str, Any]]
) -> dict[Scope, DayView]:
    """Count ``events`` in batches of three, then read every scope's history over DAYS."""
    prefix = f"{settings.key_prefix}:{next(_prefixes)}"

    async def run() -> dict[Scope, DayView]:
        redis = Redis.from_url(settings.redis_url)
        async with redis:
            counter = event_counter(redis, key_prefix=prefix, zone_of=zone_of, clock=QUERY_CLOCK)
            decoded = [decode_event(orjson.dumps(event)) for event in events]
            for start in range(0, len(decoded), 3):
                await counter.count(decoded[start : start + 3])
            reader = HistoryReader(redis, counter.context)
            views: dict[Scope, DayView] = {}
            today = DAYS[-1]
            for vdn, campaign, batch in SCOPES:
                history = await reader.days(vdn, campaign, DAYS, today, batch, hours=True)
                fails = await reader.fail_data(vdn, campaign, DAYS, batch)
                for day, codes in zip(history, fails, strict=True):
                    hours = {hour: c for hour, c in day.hours.items() if any(c.values())}
                    views[(vdn, campaign, batch, day.day)] = (
                        day.daily,
                        day.totals_at_end,
                        codes,
                        hours,
                    )
            return views

    try:
        return asyncio.run(run())
    finally:
        delete_keys(settings.redis_url, prefix)


def model_history(events: Sequence[dict[str, Any]]) -> dict[Scope, DayView]:
    model = reference_statistics(events, default_zone=GMT8, vdn_zones=VDN_ZONES)
    return {
        (vdn, campaign, batch, day): (
            model.daily(vdn, campaign, day, batch),
            model.totals_at_end(vdn, campaign, day, batch),
            model.fail_data(vdn, campaign, day, batch),
            model.hourly(vdn, campaign, day, batch),
        )
        for vdn, campaign, batch in SCOPES
        for day in DAYS
    }


def model_views(events: Sequence[dict[str, Any]]) -> dict[tuple[int, date], list[dict[str, Any]]]:
    model = reference_statistics(events, default_zone=GMT8, vdn_zones=VDN_ZONES)
    return {(vdn, day): model.count_detail(vdn, day) for vdn in VDN_ZONES for day in DAYS}


slow_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@slow_settings
@given(data=st.data())
def test_any_order_and_duplicates_give_the_model_numbers(
    test_settings: Settings, event_counter: EventCounters, data: st.DataObject
) -> None:
    events = data.draw(records())
    stream = data.draw(delivered(events))
    batch_sizes = data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=4))
    outcomes, views = count_and_read(test_settings, event_counter, stream, batch_sizes)
    assert views == model_views(events)
    assert sum(outcome.applied for outcome in outcomes) == len(
        {orjson.dumps(event, option=orjson.OPT_SORT_KEYS) for event in events}
    )
    assert not any(outcome.conflicts for outcome in outcomes)


@slow_settings
@given(data=st.data())
def test_contradictions_are_rejected_like_the_model_rejects_them(
    test_settings: Settings, event_counter: EventCounters, data: st.DataObject
) -> None:
    stream = data.draw(contradicting(data.draw(records())))
    batch_sizes = data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=4))
    outcomes, views = count_and_read(test_settings, event_counter, stream, batch_sizes)
    model = reference_statistics(stream, default_zone=GMT8, vdn_zones=VDN_ZONES)
    assert views == model_views(stream)
    # Within a batch the engine answers campaign by campaign: compare the rejects as multisets.
    rejected = [event.to_json() for outcome in outcomes for event in outcome.conflicts]
    expected = [decode_event(orjson.dumps(event)).to_json() for event in model.rejected]
    assert sorted(map(orjson.dumps, rejected)) == sorted(map(orjson.dumps, expected))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_history_in_any_order_and_with_duplicates_gives_the_model_numbers(
    test_settings: Settings, event_counter: EventCounters, data: st.DataObject
) -> None:
    """Days, hours (a record in the hour of its earliest event of the day, moved when an
    earlier one comes later), failCodes and the call totals at each day's end, for every
    campaign and batch, in two zones, across midnights."""
    events = data.draw(records())
    stream = data.draw(delivered(events))
    assert count_and_read_history(test_settings, event_counter, stream) == model_history(events)


def test_counting_the_same_batch_twice_changes_nothing(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    events = [
        {"eventType": "data.added", "vdnId": 1, "campaignId": "C1", "dataId": "d1",
         "batchId": "B1", "occurredAt": "2026-11-28T23:59:59.999+08:00"},
        {"eventType": "call.result", "vdnId": 1, "campaignId": "C1", "dataId": "d1",
         "batchId": "B1", "callId": "x1", "callStatus": 6, "final": True,
         "occurredAt": "2026-11-29T00:00:00.000+08:00"},
    ]  # fmt: skip
    outcomes, views = count_and_read(test_settings, event_counter, events + events, [2])
    assert [(o.applied, o.duplicates) for o in outcomes] == [(2, 0), (0, 2)]
    saturday, sunday = views[(1, date(2026, 11, 28))][0], views[(1, date(2026, 11, 29))][0]
    assert (saturday["dailyCount"], saturday["dailyCalledCount"]) == (1, 0)
    assert (sunday["dailyCount"], sunday["dailyCalledCount"], sunday["dailyFinishCount"]) == (
        1,
        1,
        1,
    )
    assert (sunday["totalCount"], sunday["unCallCount"]) == (1, 0)
