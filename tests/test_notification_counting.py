"""Notifications decided where events are counted (engine/count_events/notifications.lua).

On the real Redis, through the engine's EventCounter: a campaign's outbox holds exactly what the
reference model (NotificationModel) predicts for the stream cut into the same counting calls at
the same clock; duplicates and replays notify nothing; a campaign with an entry reaches the due
set, even when the worker died before it could put it there; ISALES_NOTIFICATIONS=off writes
nothing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from isales_stats.core.decisions import AbandonLimit
from isales_stats.core.events import event_from_json
from isales_stats.core.keys import KeyLayout
from isales_stats.core.notification_kinds import (
    ABANDON_OVER,
    ABANDON_WARNING,
    CAMPAIGN_FINISHED,
    NOTIFIED_FIELDS,
    OUTBOX_FIELDS,
    notification_id,
)
from isales_stats.core.reference_model import NotificationModel, ReferenceModel
from isales_stats.core.settings import Settings
from isales_stats.engine.counting import COUNT_EVENTS, CountingOutcome, EventCounter
from isales_stats.engine.redis_connection import run_pipeline
from tests.support.cleanup import delete_keys
from tests.support.clock import GMT8, SettableClock
from tests.support.counting import EventCounters
from tests.support.events import ADDED, CALL, REMOVED, call_event

pytestmark = pytest.mark.stack

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z, 08:00 in GMT+8
MINUTE = 60


async def outbox(redis: Redis, layout: KeyLayout, vdn_id: int, campaign: str) -> list[Any]:
    """The outbox's entries as the model writes them: data parsed."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(  # type: ignore[assignment]
        layout.campaign_outbox(vdn_id, campaign)
    )
    found = []
    for _, fields in entries:
        entry = {name: fields[name.encode()].decode() for name in OUTBOX_FIELDS}
        entry["data"] = orjson.loads(entry["data"])
        found.append(entry)
    return found


def limit_of(settings: Settings) -> Any:
    return lambda vdn_id: AbandonLimit(
        settings.abandon_limit_of(vdn_id), settings.abandon_warning_fraction
    )


async def count_steps(
    counter: EventCounter,
    clock: SettableClock,
    steps: Sequence[tuple[float, list[dict[str, Any]]]],
    model: NotificationModel,
) -> None:
    for at, events in steps:
        clock.now = at
        await counter.count([event_from_json(event) for event in events])
        model.count(events, int(at * 1000))


def test_a_campaign_finishes_once_and_again_after_records_are_added(
    test_settings: Settings, event_counter: EventCounters, key_layout: KeyLayout
) -> None:
    clock = SettableClock(START)
    at_ms = int(START * 1000)
    imports = [call_event(ADDED, dataId=f"d{i}", occurredAt=at_ms) for i in range(3)]
    calls = [
        call_event(CALL, dataId=f"d{i}", callId=f"x{i}", occurredAt=at_ms + 1000) for i in range(3)
    ]
    later = [
        call_event(ADDED, dataId="d9", occurredAt=at_ms + 5000),
        call_event(CALL, dataId="d9", callId="x9", occurredAt=at_ms + 6000),
    ]
    steps = [
        (START, imports),
        (START + 1, calls[:2]),
        (START + 2, [calls[2], *calls]),  # the last record, and duplicates
        (START + 3, imports + calls),  # a replay
        (START + 4, later[:1]),  # records again: no longer finished
        (START + 5, later),
    ]

    async def scenario() -> None:
        redis = Redis.from_url(test_settings.redis_url)
        try:
            model = NotificationModel(ReferenceModel(lambda _: GMT8), limit_of(test_settings))
            await count_steps(event_counter(redis, clock=clock), clock, steps, model)
            written = await outbox(redis, key_layout, 1, "C1")
            assert written == model.outbox(1, "C1")
            assert [entry["type"] for entry in written] == [CAMPAIGN_FINISHED] * 2
            assert [entry["id"] for entry in written] == [
                notification_id(1, "C1", 1),
                notification_id(1, "C1", 2),
            ]
            assert written[0]["timestamp"] == "2026-01-01T00:00:02.000Z"
            assert written[1]["data"] == {
                "vdnId": 1,
                "campaignId": "C1",
                "totalCount": 4,
                "unCallCount": 0,
                "totalCalledCount": 4,
                "totalCallSucc": 4,
                "totalFinishCount": 4,
            }
            # announced: in the due set since the first one, and the mark cleared
            due = await redis.zrange(key_layout.outbox_due(), 0, -1, withscores=True)
            assert due == [(b"1:C1", START * 1000 + 2000)]
            notified = key_layout.campaign_notified(1, "C1")
            assert not await redis.hexists(notified, NOTIFIED_FIELDS["unannounced"])
        finally:
            await redis.aclose()

    asyncio.run(scenario())


def test_abandon_crossings_are_notified_per_window_once(
    test_settings: Settings, event_counter: EventCounters, key_layout: KeyLayout
) -> None:
    """3 % of the live calls: 2.4 % from the warning on. 100 connected calls, then abandoned
    ones one at a time: the third makes 3/103 = 2.91 % (warning), the fourth 3.85 % (over),
    in each window at once; more connected calls bring it back under."""
    clock = SettableClock(START)
    at_ms = int(START * 1000)

    def connected(first: int, count: int) -> list[dict[str, Any]]:
        return [
            call_event(CALL, dataId=f"c{i}", callId=f"c{i}", final=False, occurredAt=at_ms)
            for i in range(first, first + count)
        ]

    def abandoned(i: int) -> list[dict[str, Any]]:
        return [
            call_event(
                CALL,
                dataId=f"a{i}",
                callId=f"a{i}",
                callStatus=5,
                failCode="00701",
                final=False,
                occurredAt=at_ms,
            )
        ]

    steps = [(START, connected(0, 100))]
    steps += [(START + i + 1, abandoned(i)) for i in range(5)]
    steps += [(START + 10, abandoned(4) + abandoned(3))]  # duplicates: nothing
    steps += [(START + 11, connected(100, 100))]

    async def scenario() -> None:
        redis = Redis.from_url(test_settings.redis_url)
        try:
            model = NotificationModel(ReferenceModel(lambda _: GMT8), limit_of(test_settings))
            await count_steps(event_counter(redis, clock=clock), clock, steps, model)
            written = await outbox(redis, key_layout, 1, "C1")
            assert written == model.outbox(1, "C1")
            kinds = [(e["type"], e["data"]["window"]) for e in written]
            windows = ("today", "rolling24h", "rolling30d")
            assert kinds == [
                *((ABANDON_WARNING, window) for window in windows),
                *((ABANDON_OVER, window) for window in windows),
                *((ABANDON_WARNING, window) for window in windows),
            ]
            assert written[3]["data"] == {
                "vdnId": 1,
                "campaignId": "C1",
                "window": "today",
                "abandoned": 4,
                "denominator": 104,
                "ratePercent": 3.85,
                "limitPercent": 3.0,
            }
        finally:
            await redis.aclose()

    asyncio.run(scenario())


def test_nothing_is_written_when_notifications_are_off(
    test_settings: Settings, key_layout: KeyLayout
) -> None:
    off = test_settings.model_copy(update={"notifications": False})
    clock = SettableClock(START)
    at_ms = int(START * 1000)
    events = [call_event(CALL, dataId="d1", callId="x1", occurredAt=at_ms)]

    async def scenario() -> None:
        redis = Redis.from_url(off.redis_url)
        try:
            await EventCounters(off)(redis, clock=clock).count(
                [event_from_json(event) for event in events]
            )
            assert await redis.exists(key_layout.campaign_totals(1, "C1"))
            assert not await redis.exists(
                key_layout.campaign_outbox(1, "C1"),
                key_layout.campaign_notified(1, "C1"),
                key_layout.outbox_due(),
            )
        finally:
            await redis.aclose()

    asyncio.run(scenario())


def test_a_worker_that_dies_before_the_due_set_leaves_the_next_call_to_announce(
    test_settings: Settings, event_counter: EventCounters, key_layout: KeyLayout
) -> None:
    """The counting script ran (its entry written) and the worker died before its next round
    trip: the replay of the same batch finds the mark and puts the campaign in the due set."""
    clock = SettableClock(START)
    events = [event_from_json(call_event(CALL, occurredAt=int(START * 1000)))]

    async def scenario() -> None:
        redis = Redis.from_url(test_settings.redis_url)
        try:
            counter = event_counter(redis, clock=clock)
            (keys, arguments), *_ = counter._scripts({(1, "C1"): events}, CountingOutcome())
            # the script alone, then death
            (reply,) = await run_pipeline(
                redis, [COUNT_EVENTS], lambda pipe: COUNT_EVENTS.queue(pipe, keys, arguments)
            )
            assert reply == b"AN"
            assert await redis.zcard(key_layout.outbox_due()) == 0
            await counter.count(events)  # the replay: a duplicate, announced
            assert await redis.zrange(key_layout.outbox_due(), 0, -1) == [b"1:C1"]
            assert await redis.xlen(key_layout.campaign_outbox(1, "C1")) == 1
        finally:
            await redis.aclose()

    asyncio.run(scenario())


# --- held to the model over random streams, cut at random -------------------------------------

RECORDS = [f"d{i}" for i in range(6)]


@st.composite
def streams(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Counting calls of imports, removals and calls (a third abandoned), some duplicated, over
    two campaigns and two days, each call a few events."""
    seed = draw(st.integers(0, 2**32))
    draw_random = random.Random(seed)
    events: list[dict[str, Any]] = []
    at_ms = int(START * 1000)
    for n in range(draw(st.integers(5, 60))):
        campaign = draw_random.choice(("C1", "C2"))
        record = draw_random.choice(RECORDS)
        kind = draw_random.choices((ADDED, CALL, REMOVED), (3, 8, 1))[0]
        occurred = at_ms + draw_random.randrange(0, 2 * 86_400_000)
        if kind == CALL:
            status = draw_random.choice((6, 6, 5, 5))
            events.append(
                call_event(
                    CALL,
                    campaignId=campaign,
                    dataId=record,
                    callId=f"x{n}",
                    callStatus=status,
                    failCode=None if status == 6 else draw_random.choice(("00701", "17")),
                    final=draw_random.random() < 0.5,
                    occurredAt=occurred,
                )
            )
        else:
            events.append(call_event(kind, campaignId=campaign, dataId=record, occurredAt=occurred))
        if draw_random.random() < 0.2:
            events.append(draw_random.choice(events))
    cuts: list[list[dict[str, Any]]] = []
    while events:
        size = draw_random.randint(1, 6)
        cuts.append(events[:size])
        events = events[size:]
    return cuts


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(cuts=streams())
def test_the_outbox_is_what_the_model_predicts_for_the_calls_counted(
    test_settings: Settings, cuts: list[list[dict[str, Any]]]
) -> None:
    prefix = f"{test_settings.key_prefix}:{random.randrange(10**9)}"
    layout = KeyLayout(prefix)
    tight = test_settings.model_copy(update={"key_prefix": prefix, "abandon_limit_percent": 20.0})
    clock = SettableClock(START)
    steps = [(START + 3600 * i, cut) for i, cut in enumerate(cuts)]

    async def scenario() -> None:
        redis = Redis.from_url(tight.redis_url)
        try:
            model = NotificationModel(ReferenceModel(lambda _: GMT8), limit_of(tight))
            counter = EventCounters(tight)(redis, clock=clock)
            await count_steps(counter, clock, steps, model)
            for campaign in ("C1", "C2"):
                assert await outbox(redis, layout, 1, campaign) == model.outbox(1, campaign)
            # the whole stream again, at once: all duplicates, nothing new
            clock.now += 60
            await counter.count([event_from_json(e) for cut in cuts for e in cut])
            for campaign in ("C1", "C2"):
                assert await outbox(redis, layout, 1, campaign) == model.outbox(1, campaign)
        finally:
            await redis.aclose()
            delete_keys(tight.redis_url, prefix)

    asyncio.run(scenario())
