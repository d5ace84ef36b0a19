"""The rolling windows as counting keeps them (engine/count_events/windows.lua), on the real Redis.

A scope's window hash (docs/adr/0008-rolling-windows.md) holds its calls, connects, abandoned
calls and finished records per minute, hour and day, its life, its latest call's minute and
each window's sum as of the buckets current on the counting worker's clock. Held here to the
reference model over duplicated, shuffled and late streams, with a worker clock that moves on
between batches (across New York's changes of the clocks and Kolkata's half-hour midnights), so
that the sums are moved on bucket by bucket and summed again after long gaps.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from isales_stats.core.days import day_of
from isales_stats.core.events import decode_event
from isales_stats.core.keys import ABANDON_FAIL_CODES, KeyLayout
from isales_stats.core.reference_model import ReferenceModel
from isales_stats.core.settings import Settings
from isales_stats.core.windows import LIFE_FIELD, SUMS_FIELD, WINDOWS, Now, day_number
from isales_stats.engine.counting import EventCounter
from isales_stats.engine.history import HistoryReader
from isales_stats.engine.scripts import part_source
from tests.support.cleanup import delete_keys
from tests.support.clock import GMT8, SettableClock
from tests.support.counting import EventCounters
from tests.support.events import ADDED, CALL, REMOVED, call_event
from tests.support.window_hashes import (
    WindowHash,
    expected_window_hash,
    parse_window_hash,
    window_fields,
)

pytestmark = pytest.mark.stack

NEW_YORK, KOLKATA = ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")
VDN_ZONES = {1: NEW_YORK, 2: KOLKATA}
SCOPES = [
    (vdn, campaign, batch)
    for vdn in VDN_ZONES
    for campaign in ("C1", "C2")
    for batch in (None, "B1", "B2")
]
MINUTE, HOUR, DAY = 60, 3600, 86_400
_prefixes = itertools.count()


def zone_of(vdn_id: int) -> Any:
    return VDN_ZONES[vdn_id]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def window_hashes(
    redis: Redis, layout: KeyLayout, scopes: Sequence[tuple[int, str, str | None]]
) -> dict[tuple[int, str, str | None], WindowHash | None]:
    return {
        scope: parse_window_hash(await redis.hgetall(layout.scope_window(*scope)))
        for scope in scopes
    }


def call(
    data_id: str,
    at: int,
    *,
    batch: str | None = None,
    status: int = 6,
    final: bool = False,
    fail_code: str | None = None,
    call_id: str | None = None,
) -> dict[str, Any]:
    return call_event(CALL, dataId=data_id, callId=call_id or f"x-{data_id}-{at}", batchId=batch,
                      callStatus=status, final=final, failCode=fail_code,
                      occurredAt=at)  # fmt: skip


# --- a worked example ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_scope_keeps_its_buckets_and_sums_and_moves_them_on_with_the_clock(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    """GMT+08:00, the worker's clock at 10:15:30. Then three minutes later (the sums move on by
    subtracting the minutes that left m5), then two hours later (every minute window summed
    again, the minutes older than an hour deleted)."""
    at = datetime(2026, 12, 8, 10, 15, 30, tzinfo=GMT8)
    clock = SettableClock(at.timestamp())

    def moment(hour: int, minute: int, day: int = 8) -> int:
        return ms(datetime(2026, 12, day, hour, minute, 20, tzinfo=GMT8))

    stream = [
        call("d1", moment(10, 15), batch="B1", final=True),
        call("d2", moment(10, 11), batch="B1", status=5, fail_code="00701"),
        call("d3", moment(9, 20), batch="B1", status=5, fail_code="00603", final=True),
        call("d4", moment(23, 50, day=7), batch="B1"),
        call("d1", moment(10, 14), batch="B1", final=True),  # d1's second final call
    ]
    async with Redis.from_url(test_settings.redis_url) as redis:
        counter = event_counter(redis, clock=clock)
        layout = counter.layout
        await counter.count([decode_event(orjson.dumps(event)) for event in stream])
        minute = ms(at) // 60_000
        hour = minute // 60  # the hours of GMT+08:00 start on UTC hours
        today = day_number(date(2026, 12, 8))
        fields = window_fields(await redis.hgetall(layout.scope_window(1, "C1")))
        assert fields == {
            f"m{minute}": "1,1,0,1",  # 10:15, d1's first final call
            f"m{minute - 1}": "1,1,0,0",  # 10:14, d1 again: its record finished already
            f"m{minute - 4}": "1,0,1,0",  # 10:11, abandoned
            f"m{minute - 55}": "1,0,0,1",  # 09:20, failed (not abandoned), finished d3
            f"h{hour}": "3,2,1,1",
            f"h{hour - 1}": "1,0,0,1",
            f"h{hour - 11}": "1,1,0,0",  # yesterday 23:50
            f"d{today}": "4,2,1,2",
            f"d{today - 1}": "1,1,0,0",
            "life": "5,3,1,2",
            "last": str(minute),
            "sums": f"{minute},{hour},{today};3,2,1,1;3,2,1,1;4,2,1,2;5,3,1,2;5,3,1,2",
        }
        # The batch's hash is the same: every record is in B1.
        assert window_fields(await redis.hgetall(layout.scope_window(1, "C1", "B1"))) == fields

        clock.advance(3 * MINUTE)
        await counter.count([decode_event(orjson.dumps(call("d5", moment(10, 18))))])
        stored = parse_window_hash(await redis.hgetall(layout.scope_window(1, "C1")))
        assert stored is not None
        assert stored.at == Now(minute + 3, hour, today)
        # m5 is 10:14 to 10:18 now: it lost 10:11
        assert stored.sums["m5"] == (3, 3, 0, 1)  # 10:14, 10:15, 10:18
        assert stored.sums["m15"] == (4, 3, 1, 1)
        assert stored.sums["h24"] == (6, 4, 1, 2)

        clock.advance(2 * HOUR)
        await counter.count([decode_event(orjson.dumps(call("d6", moment(12, 18))))])
        stored = parse_window_hash(await redis.hgetall(layout.scope_window(1, "C1")))
        assert stored is not None
        assert stored.at == Now(minute + 123, hour + 2, today)
        assert {bucket for bucket in stored.buckets if bucket[0] == "minute"} == {
            ("minute", minute + 123)
        }
        assert (stored.sums["m5"], stored.sums["m60"]) == ((1, 1, 0, 0), (1, 1, 0, 0))
        assert stored.sums["h24"] == stored.sums["d30"] == stored.life == (7, 5, 1, 2)
        # Only the campaign's hash moved: the batch's still holds what it held.
        assert window_fields(await redis.hgetall(layout.scope_window(1, "C1", "B1"))) == fields


@pytest.mark.anyio
async def test_a_worker_whose_clock_is_behind_keeps_the_buckets_of_the_one_ahead(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    ahead = SettableClock(datetime(2026, 12, 8, 10, 15, tzinfo=GMT8).timestamp())
    behind = SettableClock(ahead.now - 10 * MINUTE)
    async with Redis.from_url(test_settings.redis_url) as redis:
        first, second = event_counter(redis, clock=ahead), event_counter(redis, clock=behind)
        await first.count([decode_event(orjson.dumps(call("d1", int(ahead.now * 1000))))])
        late = call("d2", int(behind.now * 1000) - 2 * 60_000)  # in m15 of the one ahead only
        await second.count([decode_event(orjson.dumps(late))])
        stored = parse_window_hash(await redis.hgetall(first.layout.scope_window(1, "C1")))
        assert stored is not None
        assert stored.at == Now.at(int(ahead.now * 1000), GMT8)
        assert (stored.sums["m5"], stored.sums["m15"]) == ((1, 1, 0, 0), (2, 2, 0, 0))


@pytest.mark.anyio
async def test_a_window_hash_spoilt_by_hand_is_summed_again_and_counting_goes_on(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    """Sums that are not of the stored form are worked out again from the buckets; a count that
    is not a number counts as 0. Nothing stops the campaign's counting."""
    clock = SettableClock(datetime(2026, 12, 8, 10, 15, tzinfo=GMT8).timestamp())
    now_ms = int(clock.now * 1000)
    async with Redis.from_url(test_settings.redis_url) as redis:
        counter = event_counter(redis, clock=clock)
        key = counter.layout.scope_window(1, "C1")
        await counter.count([decode_event(orjson.dumps(call("d1", now_ms - 20 * 60_000)))])
        for sums in ("1,2;oops", "", "1,2,3;4,5,6,7", None):
            if sums is not None:
                await redis.hset(key, SUMS_FIELD, sums)
            else:
                await redis.hset(key, mapping={LIFE_FIELD: "a,b", SUMS_FIELD: "x"})
            outcome = await counter.count([decode_event(orjson.dumps(call(f"d-{sums}", now_ms)))])
            assert outcome.applied == 1
            stored = parse_window_hash(await redis.hgetall(key))
            assert stored is not None
            assert stored.at == Now.at(now_ms, GMT8)
            calls = stored.buckets[("minute", now_ms // 60_000)][0]
            assert (stored.sums["m5"][0], stored.sums["m60"][0]) == (calls, calls + 1)
        assert stored is not None
        assert stored.life == (1, 1, 0, 0)  # what a spoilt life held is lost; it goes on


@pytest.mark.anyio
async def test_the_abandon_failcodes_setting_is_what_the_hours_and_the_windows_count(
    test_settings: Settings,
) -> None:
    """ISALES_ABANDON_FAIL_CODES set to one code of the dialer's own: the history's hours and the
    windows count the calls with it as abandoned, and no longer those with the default codes;
    a connected call is never abandoned, whatever its failCode."""
    custom = test_settings.model_copy(update={"abandon_fail_codes": "X7,00701"})
    clock = SettableClock(datetime(2026, 12, 8, 10, 15, tzinfo=GMT8).timestamp())
    now_ms = int(clock.now * 1000)
    stream = [
        call("d1", now_ms, status=5, fail_code="X7"),
        call("d2", now_ms, status=5, fail_code="00701"),
        call("d3", now_ms, status=5, fail_code="01046"),  # a default code, not in the setting
        call("d4", now_ms, status=6, fail_code="X7"),
    ]
    async with Redis.from_url(custom.redis_url) as redis:
        counter = EventCounters(custom)(redis, clock=clock)
        assert counter.abandon_fail_codes == "X7,00701"
        await counter.count([decode_event(orjson.dumps(event)) for event in stream])
        stored = parse_window_hash(await redis.hgetall(counter.layout.scope_window(1, "C1")))
        assert stored is not None
        assert stored.life == (4, 1, 2, 0)
        today = day_of(now_ms, GMT8)
        (day,) = await HistoryReader(redis, counter.context).days(
            1, "C1", [today], today, hours=True
        )
        assert sum(hour["abandonedCalls"] for hour in day.hours.values()) == 2
        model = ReferenceModel(lambda vdn: GMT8, custom.abandon_fail_code_set)
        for event in stream:
            model.add(event)
        assert model.window_life(1, "C1") == stored.life


def test_the_day_numbers_of_the_script_are_pythons(test_settings: Settings) -> None:
    """The script numbers a "YYYY-MM-DD" day without a calendar (days_from_civil); run in Redis
    over every day of 1969 to 2101, leap days and the turns of centuries included."""
    function = re.search(
        r"^local function days_from_civil\(label\)\n.*?^end\n",
        part_source("count_events", "windows.lua"),
        re.MULTILINE | re.DOTALL,
    )
    assert function
    script = (
        "local floor = math.floor\n"
        + function[0]
        + "local numbers = {}\n"
        + "for i, label in ipairs(ARGV) do numbers[i] = days_from_civil(label) end\n"
        + "return numbers\n"
    )
    first = date(1969, 1, 1)
    days = [first + timedelta(days=n) for n in range((date(2101, 12, 31) - first).days + 1)]
    days += [date(1600, 2, 29), date(2400, 2, 29), date(2400, 3, 1), date(1900, 3, 1)]
    with SyncRedis.from_url(test_settings.redis_url) as redis:
        numbers: list[int] = []
        for start in range(0, len(days), 5000):
            labels = [day.isoformat() for day in days[start : start + 5000]]
            numbers += redis.eval(script, 0, *labels)
    assert numbers == [day_number(day) for day in days]


# --- against the model ---------------------------------------------------------------------------

# Where the worker's clock starts: before New York's clocks go forward (02:00 EST is 03:00 EDT)
# and back (the two 01:00s), before Kolkata's midnight (18:30 UTC), and ten minutes before a
# UTC midnight. The clock then moves forward by STEPS between batches.
STARTS = [
    datetime(2026, 3, 8, 6, 40, tzinfo=UTC),
    datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
    datetime(2026, 12, 7, 18, 10, tzinfo=UTC),
    datetime(2026, 12, 7, 23, 50, tzinfo=UTC),
]
# Seconds between two batches: none, a minute or a few (the sums move on bucket by bucket),
# more than a window's minutes or hours (summed again), a day, a month.
STEPS = [0, MINUTE, 2 * MINUTE, 4 * MINUTE, 7 * MINUTE, 20 * MINUTE, 70 * MINUTE, 5 * HOUR,
         25 * HOUR, 3 * DAY, 31 * DAY]  # fmt: skip
# A call's occurredAt, in seconds after the worker's clock of the batch it is first sent in:
# stamped a little ahead (the clock-skew allowance), just now, late by minutes, hours, days,
# and older than the 40-day retention (its life only).
OFFSETS = [4 * MINUTE, 0, -MINUTE, -5 * MINUTE, -14 * MINUTE, -59 * MINUTE, -2 * HOUR,
           -23 * HOUR, -25 * HOUR, -29 * DAY, -31 * DAY, -45 * DAY]  # fmt: skip


def last_call(vdn: int, campaign: str, batch: str | None, clock: int) -> dict[str, Any]:
    """A fresh call of a scope at ``clock``: the last batch has one of every scope."""
    name = f"last-{vdn}-{campaign}-{batch}"
    return call_event(CALL, vdnId=vdn, campaignId=campaign, dataId=name, batchId=batch,
                      callId=name, occurredAt=clock * 1000)  # fmt: skip


@st.composite
def schedules(draw: st.DrawFn) -> tuple[list[int], list[list[dict[str, Any]]]]:
    """The worker's clock (epoch seconds) at each batch, and each batch's events as delivered:
    a few records' calls, each first sent in some batch, some sent again in the same or a later
    one, shuffled within a batch; then one fresh call of every scope, so that every hash moves
    on to the last clock."""
    start = int(draw(st.sampled_from(STARTS)).timestamp())
    clocks = [start]
    for _ in range(draw(st.integers(1, 5))):
        clocks.append(clocks[-1] + draw(st.sampled_from(STEPS)) + draw(st.integers(0, 59)))
    batches: list[list[dict[str, Any]]] = [[] for _ in clocks]
    call_number = itertools.count()
    for record in range(draw(st.integers(1, 8))):
        vdn, campaign, batch = draw(st.sampled_from(SCOPES))
        common: dict[str, Any] = {"vdnId": vdn, "campaignId": campaign, "dataId": f"d{record}",
                                  "batchId": batch}  # fmt: skip
        events: list[tuple[int, dict[str, Any]]] = []  # (the batch it is first sent in, it)
        if draw(st.booleans()):
            events.append((0, call_event(ADDED, **common, occurredAt=clocks[0] * 1000)))
        for _ in range(draw(st.integers(1, 3))):
            sent = draw(st.integers(0, len(clocks) - 1))
            stamped = (clocks[sent] + draw(st.sampled_from(OFFSETS))) * 1000
            event = call_event(
                CALL,
                **common,
                callId=f"call{next(call_number)}",
                callStatus=draw(st.sampled_from([5, 6])),
                final=draw(st.booleans()),
                failCode=draw(st.sampled_from([None, "F1", "00701", "00702", "01046"])),
                occurredAt=stamped - draw(st.integers(0, 59_999)),
            )
            events.append((sent, event))
        if draw(st.integers(0, 3)) == 0:  # a removal counts no call, and undoes no finish
            sent = draw(st.integers(0, len(clocks) - 1))
            events.append((sent, call_event(REMOVED, **common, occurredAt=clocks[sent] * 1000)))
        for sent, event in events:
            for copy in range(1 + draw(st.integers(0, 2))):
                again = sent if copy == 0 else draw(st.integers(sent, len(clocks) - 1))
                batches[again].append(event)
    batches = [draw(st.permutations(batch)) for batch in batches]
    clocks.append(clocks[-1] + draw(st.sampled_from(STEPS)) + draw(st.integers(0, 59)))
    batches.append([last_call(*scope, clocks[-1]) for scope in SCOPES])
    return clocks, batches


def count_and_compare(
    settings: Settings,
    event_counter: EventCounters,
    clocks: list[int],
    batches: list[list[dict[str, Any]]],
) -> None:
    """Count batch by batch, the clock set before each; after each, every scope's window hash
    must be the model's, as of the buckets of the last batch that counted a call of it."""
    prefix = f"{settings.key_prefix}:{next(_prefixes)}"
    model = ReferenceModel(zone_of)
    clock = SettableClock(clocks[0])
    counted_at: dict[tuple[int, str, str | None], int] = {}

    async def run() -> None:
        async with Redis.from_url(settings.redis_url) as redis:
            counter: EventCounter = event_counter(
                redis, key_prefix=prefix, zone_of=zone_of, clock=clock
            )
            for now, batch in zip(clocks, batches, strict=True):
                clock.now = now
                await counter.count([decode_event(orjson.dumps(event)) for event in batch])
                for event in batch:
                    if model.add(event) == "counted" and event["eventType"] == CALL:
                        scope = (event["vdnId"], event["campaignId"])
                        counted_at[(*scope, None)] = now
                        if event.get("batchId"):
                            counted_at[(*scope, event["batchId"])] = now
                stored = await window_hashes(redis, counter.layout, SCOPES)
                expected = {
                    scope: expected_window_hash(
                        model,
                        *scope,
                        Now.at(counted_at[scope] * 1000, zone_of(scope[0])),
                    )
                    if scope in counted_at
                    else None
                    for scope in SCOPES
                }
                assert stored == expected, f"after the batch counted at {now}"

    try:
        asyncio.run(run())
    finally:
        delete_keys(settings.redis_url, prefix)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(schedule=schedules())
def test_windows_in_any_order_late_and_duplicated_are_the_models_as_the_clock_moves_on(
    test_settings: Settings,
    event_counter: EventCounters,
    schedule: tuple[list[int], list[list[dict[str, Any]]]],
) -> None:
    clocks, batches = schedule
    count_and_compare(test_settings, event_counter, clocks, batches)


def test_every_window_is_summed_from_its_first_bucket_on(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    """Each window's first bucket, in Kolkata, whose hours start at half past a UTC hour: at
    05:31 UTC, calls 0, 2, 5, 15 and 60 minutes, a day and 30 days before are in 2, 3, 4, 5
    (04:31 is in the hour before) and 6 (a day before is the 25th hour back) of the windows."""
    start = int(datetime(2026, 12, 8, 5, 31, tzinfo=UTC).timestamp())
    before = [0, 2 * MINUTE, 5 * MINUTE, 15 * MINUTE, 60 * MINUTE, 24 * HOUR, 30 * DAY]
    calls = [
        call_event(CALL, vdnId=2, campaignId="C1", dataId=f"d{n}", callId=f"k{n}",
                   occurredAt=(start - seconds) * 1000)
        for n, seconds in enumerate(before)
    ]  # fmt: skip
    count_and_compare(test_settings, event_counter, [start], [calls])
    model = ReferenceModel(zone_of)
    for event in calls:
        model.add(event)
    sums = model.window_sums(2, "C1", Now.at(start * 1000, KOLKATA))
    assert [sums[name][0] for name in WINDOWS] == [2, 3, 4, 5, 6]


def test_a_context_carries_the_abandon_failcodes_of_its_settings(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    context = event_counter.context()
    assert context.abandon_fail_codes == test_settings.abandon_fail_codes
    assert Settings.model_fields["abandon_fail_codes"].default == ",".join(ABANDON_FAIL_CODES)
    assert replace(context, abandon_fail_codes="X").abandon_fail_codes == "X"
