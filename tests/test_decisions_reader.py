"""The read side of the abandon rate and pacing (engine/decisions.py, read_decisions.lua).

Window hashes are written into the real Redis as the counting script leaves them
(tests/support/windows.py, the format of docs/adr/0008-rolling-windows.md), with the worker's
clock at one moment; the reader, its clock injected, reads them at the same moment or later.
Each call's counts are a power of ten, so that a window's sum says which calls it holds:
11 is the first two, 101 the first and the third.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from isales_stats.core.days import MINUTE_MS
from isales_stats.core.decisions import Counts, ScopeCounts
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.core.windows import SUMS_FIELD, WINDOWS
from isales_stats.engine.decisions import DecisionCounts, DecisionsReader
from isales_stats.engine.statistics import CorruptCounters
from tests.support.clock import GMT8, SettableClock
from tests.support.counting import EventCounters
from tests.support.windows import Bucketed, window_fields, write_scope

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

VDN = 3
NEW_YORK = ZoneInfo("America/New_York")
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# A Tuesday morning in the dialer's zone.
NOW = datetime(2026, 12, 8, 10, 15, 30, tzinfo=GMT8)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis(test_settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(test_settings.redis_url)
    yield client
    await client.aclose()


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def holding(*calls: int) -> Counts:
    """The sum of the calls numbered ``calls``: call n counts 10**n of everything, so that a sum
    names the calls it holds."""
    total = sum(10**n for n in calls)
    return Counts(total, total, total, total)


class Scene:
    """One test's Redis, key layout and clock, and a reader on them."""

    def __init__(self, redis: Redis, counters: EventCounters, zone: tzinfo = GMT8) -> None:
        self.redis = redis
        self.zone = zone
        self.clock = SettableClock()
        context = counters.context(zone_of=lambda vdn_id: self.zone, clock=self.clock)
        self.layout: KeyLayout = context.layout
        self.reader = DecisionsReader(redis, context)

    async def write(
        self,
        moments: Sequence[datetime | Bucketed],
        counted_at: datetime,
        *,
        campaign: str = "C1",
        batch: str | None = None,
        records: int = 10,
    ) -> None:
        """The scope's calls: at ``moments`` (``marked``), or as given."""
        calls = [
            call if isinstance(call, Bucketed) else Bucketed(ms(call), Counts(*[10**n] * 4))
            for n, call in enumerate(moments)
        ]
        await write_scope(
            self.redis,
            self.layout,
            VDN,
            campaign,
            calls,
            counted_at_ms=ms(counted_at),
            zone=self.zone,
            records=records,
            batch_id=batch,
        )

    async def read_at(
        self, moment: datetime, campaign: str | None = "C1", batch: str | None = None
    ) -> DecisionCounts:
        self.clock.now = moment.timestamp()
        return await self.reader.counts(VDN, campaign, batch)

    async def scope_at(self, moment: datetime) -> ScopeCounts:
        (campaign,) = (await self.read_at(moment)).campaigns
        return campaign.counts


@pytest.fixture
def scene(redis: Redis, event_counter: EventCounters) -> Scene:
    return Scene(redis, event_counter)


# Calls at these distances before NOW, numbered 0..6 (marked): now, 3 and 10 minutes, half an
# hour and two hours ago (all today), three days ago, forty days ago.
SPREAD = [NOW, NOW - 3 * MINUTE, NOW - 10 * MINUTE, NOW - 30 * MINUTE, NOW - 2 * HOUR,
          NOW - 3 * DAY, NOW - 40 * DAY]  # fmt: skip


async def test_fresh_sums_are_read_as_counted(scene: Scene) -> None:
    await scene.write(SPREAD, counted_at=NOW, records=25)
    read = await scene.read_at(NOW)
    (campaign,) = read.campaigns
    scope = campaign.counts
    assert read.now_ms == ms(NOW)
    assert (campaign.campaign_id, campaign.batches) == ("C1", ())
    assert scope.windows == {
        "m5": holding(0, 1),
        "m15": holding(0, 1, 2),
        "m60": holding(0, 1, 2, 3),
        "h24": holding(0, 1, 2, 3, 4),
        "d30": holding(0, 1, 2, 3, 4, 5),
    }
    assert scope.today == holding(0, 1, 2, 3, 4)
    assert scope.life == holding(0, 1, 2, 3, 4, 5, 6)
    assert scope.last_call_minute == ms(NOW) // MINUTE_MS
    # The totals come from the packed row: records as written, calls etc. of the calls.
    total = sum(10**n for n in range(7))
    assert (scope.records, scope.calls, scope.connects, scope.finished) == (25, *[total] * 3)


async def test_sums_stale_by_a_minute_lose_the_minute_that_left(scene: Scene) -> None:
    moments = [NOW, NOW - 4 * MINUTE, NOW - 14 * MINUTE, NOW - 59 * MINUTE, NOW - 23 * HOUR]
    await scene.write(moments, counted_at=NOW)
    scope = await scene.scope_at(NOW + MINUTE)
    assert scope.windows == {
        "m5": holding(0),
        "m15": holding(0, 1),
        "m60": holding(0, 1, 2),
        "h24": holding(0, 1, 2, 3, 4),
        "d30": holding(0, 1, 2, 3, 4),
    }
    # Fresh again at the minute they were counted for.
    assert (await scene.scope_at(NOW)).windows["m60"] == holding(0, 1, 2, 3)


async def test_sums_stale_by_an_hour_lose_the_hour_and_every_minute(scene: Scene) -> None:
    # NOW is 10:15: the hour 23 hours before the current one is yesterday's 11:00.
    moments = [NOW, NOW - 23 * HOUR, NOW - 22 * HOUR, NOW - 30 * MINUTE]
    await scene.write(moments, counted_at=NOW)
    scope = await scene.scope_at(NOW + HOUR)
    assert scope.windows == {
        "m5": Counts(),
        "m15": Counts(),
        "m60": Counts(),
        "h24": holding(0, 2, 3),
        "d30": holding(0, 1, 2, 3),
    }
    # Half an hour on, the 60-minute window keeps only what is younger than its first minute.
    assert (await scene.scope_at(NOW + 30 * MINUTE)).windows["m60"] == holding(0)
    assert (await scene.scope_at(NOW + 29 * MINUTE)).windows["m60"] == holding(0, 3)


async def test_every_window_is_empty_after_a_gap_longer_than_it(scene: Scene) -> None:
    await scene.write(SPREAD, counted_at=NOW)
    scope = await scene.scope_at(NOW + 31 * DAY)
    assert scope.windows == dict.fromkeys(WINDOWS, Counts())
    assert scope.today == Counts()
    assert scope.life == holding(*range(7))
    assert scope.last_call_minute == ms(NOW) // MINUTE_MS
    # 29 days on, the 30-day window still holds the day of the last calls.
    assert (await scene.scope_at(NOW + 29 * DAY)).windows["d30"] == holding(0, 1, 2, 3, 4)


async def test_a_call_stamped_ahead_stays_after_a_gap_longer_than_a_window(scene: Scene) -> None:
    """A gap of five minutes empties the five-minute window of what it held, but a call stamped
    four minutes ahead of the worker's clock (the skew allowance) is in it still: summed from
    the hash, not by subtraction."""
    await scene.write([NOW, NOW + 4 * MINUTE, NOW - 9 * MINUTE], counted_at=NOW)
    assert (await scene.scope_at(NOW)).windows["m5"] == holding(0, 1)
    scope = await scene.scope_at(NOW + 5 * MINUTE)
    assert scope.windows["m5"] == holding(1)
    assert scope.windows["m15"] == holding(0, 1, 2)
    later = await scene.scope_at(NOW + 8 * MINUTE)
    assert (later.windows["m5"], later.windows["m15"]) == (holding(1), holding(0, 1))
    # Once the call stamped ahead is older than the window too, it is empty at once.
    assert (await scene.scope_at(NOW + 9 * MINUTE)).windows["m5"] == Counts()


async def test_a_reader_behind_the_worker_takes_the_sums_as_counted(scene: Scene) -> None:
    await scene.write([NOW, NOW - 4 * MINUTE], counted_at=NOW)
    assert (await scene.scope_at(NOW - 2 * MINUTE)).windows["m5"] == holding(0, 1)


async def test_the_30_day_window_drops_a_day_exactly_at_the_vdns_midnight(
    redis: Redis, event_counter: EventCounters
) -> None:
    """New York, across the end of daylight-saving time: the window's days are the zone's
    dates, and the oldest leaves at 00:00:00.000 local, not at a UTC midnight."""
    scene = Scene(redis, event_counter, NEW_YORK)
    evening = datetime(2026, 11, 20, 23, 59, 59, 999_000, tzinfo=NEW_YORK)
    midnight = datetime(2026, 11, 21, tzinfo=NEW_YORK)
    oldest_day = datetime(2026, 10, 22, 12, tzinfo=NEW_YORK)  # 29 days before the 20th
    moments = [oldest_day, datetime(2026, 10, 23, 0, 0, tzinfo=NEW_YORK),
               datetime(2026, 11, 20, 9, tzinfo=NEW_YORK)]  # fmt: skip
    await scene.write(moments, counted_at=datetime(2026, 11, 20, 9, tzinfo=NEW_YORK))
    before = await scene.scope_at(evening)
    after = await scene.scope_at(midnight)
    assert before.windows["d30"] == holding(0, 1, 2)
    assert after.windows["d30"] == holding(1, 2)
    assert before.today == holding(2)
    assert after.today == Counts()
    # The rolling 24 hours do not move at midnight: 09:00 is still within them.
    assert before.windows["h24"] == after.windows["h24"] == holding(2)


async def test_the_rolling_24_hours_are_elapsed_hours_on_a_25_hour_day(
    redis: Redis, event_counter: EventCounters
) -> None:
    """1 November 2026, New York: clocks go back at 02:00, the day has 25 hours. At 23:30 the
    current hour is the day's 25th, so the 24 hours are all of the day but its first hour;
    both 01:30s are in them, each in its own hour."""
    scene = Scene(redis, event_counter, NEW_YORK)
    first_hour = datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK)
    first_one_thirty = datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK, fold=0)
    second_one_thirty = datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK, fold=1)
    late = datetime(2026, 11, 1, 23, 10, tzinfo=NEW_YORK)
    await scene.write([first_hour, first_one_thirty, second_one_thirty, late], counted_at=late)
    scope = await scene.scope_at(datetime(2026, 11, 1, 23, 30, tzinfo=NEW_YORK))
    assert scope.windows["h24"] == holding(1, 2, 3)
    assert scope.today == holding(0, 1, 2, 3)
    assert scope.windows["m60"] == holding(3)


async def test_the_rolling_24_hours_reach_into_yesterday_on_a_23_hour_day(
    redis: Redis, event_counter: EventCounters
) -> None:
    """8 March 2026, New York: clocks go forward at 02:00, the day has 23 hours. At 23:30 the
    24 hours start at yesterday's 23:00."""
    scene = Scene(redis, event_counter, NEW_YORK)
    moments = [datetime(2026, 3, 7, 22, 30, tzinfo=NEW_YORK),
               datetime(2026, 3, 7, 23, 30, tzinfo=NEW_YORK),
               datetime(2026, 3, 8, 3, 30, tzinfo=NEW_YORK)]  # fmt: skip
    await scene.write(moments, counted_at=moments[-1])
    scope = await scene.scope_at(datetime(2026, 3, 8, 23, 30, tzinfo=NEW_YORK))
    assert scope.windows["h24"] == holding(1, 2)
    assert scope.today == holding(2)


async def test_batches_a_batch_alone_an_unknown_campaign_and_the_whole_vdn(scene: Scene) -> None:
    await scene.write([NOW], counted_at=NOW, campaign="C2", records=3)
    await scene.write([NOW - MINUTE], counted_at=NOW, campaign="C2", batch="b2", records=1)
    await scene.write([NOW - 2 * MINUTE], counted_at=NOW, campaign="C2", batch="b1", records=2)
    await scene.write([], counted_at=NOW, campaign="C2", batch="b0", records=4)
    await scene.write([NOW - 3 * MINUTE], counted_at=NOW, campaign="C1", records=5)
    whole = await scene.read_at(NOW, campaign=None)
    assert [campaign.campaign_id for campaign in whole.campaigns] == ["C1", "C2"]
    c2 = whole.campaigns[1]
    assert [batch for batch, _ in c2.batches] == ["b0", "b1", "b2"]
    b0, b1, b2 = (counts for _, counts in c2.batches)
    assert (b0.records, b0.windows["m5"], b0.last_call_minute) == (4, Counts(), None)
    assert b1.windows["m5"] == b2.windows["m5"] == holding(0)
    (alone,) = (await scene.read_at(NOW, campaign="C2", batch="b1")).campaigns
    assert alone.counts == c2.counts
    assert alone.batches == (("b1", b1),)
    (no_batch,) = (await scene.read_at(NOW, campaign="C2", batch="zz")).campaigns
    assert no_batch.batches == ()
    assert (await scene.read_at(NOW, campaign="nope")).campaigns == ()
    assert (await scene.reader.counts(VDN + 1)).campaigns == ()


@pytest.mark.parametrize(
    ("field", "value", "read_after"),
    [
        (SUMS_FIELD, b"M;1,-1,1,1", timedelta(0)),  # read as it is (fresh)
        (SUMS_FIELD, b"1,2,3;1,1,1,1", MINUTE),  # stale: not the windows' five sums
        (SUMS_FIELD, b"no sums", MINUTE),
        (None, b"1,x,1,1", MINUTE),  # a leaving bucket
    ],
)
async def test_a_window_written_by_something_else_is_refused(
    scene: Scene, field: str | None, value: bytes, read_after: timedelta
) -> None:
    await scene.write([NOW, NOW - 4 * MINUTE], counted_at=NOW)
    key = scene.layout.scope_window(VDN, "C1")
    if field is None:  # the bucket that leaves the five minutes first
        field = f"m{ms(NOW - 4 * MINUTE) // MINUTE_MS}"
    elif value.startswith(b"M;"):
        sums = await scene.redis.hget(key, SUMS_FIELD)
        assert isinstance(sums, bytes)
        value = sums.split(b";")[0] + value[1:] + b";0,0,0,0" * 4
    await scene.redis.hset(key, field, value)
    with pytest.raises(CorruptCounters, match="C1"):
        await scene.read_at(NOW + read_after)


async def test_read_at_any_later_moment_equals_counting_at_that_moment(scene: Scene) -> None:
    """Random calls over six weeks, counted at one moment and read at a later one: what the
    reader corrects the sums to is what counting would have written at that later moment."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    draw = random.Random(seed)
    for _ in range(20):
        counted_at = NOW - timedelta(seconds=draw.randrange(0, 3 * 86_400))
        calls = [
            Bucketed(
                ms(counted_at - timedelta(seconds=draw.randrange(0, 42 * 86_400))),
                Counts(*(draw.randrange(0, 5) for _ in range(4))),
            )
            for _ in range(draw.randrange(1, 40))
        ]
        # Minutes apart, hours apart, days apart.
        later = counted_at + timedelta(seconds=draw.choice([60, 3_600, 86_400]) * draw.random())
        await scene.write(calls, counted_at=counted_at)
        scope = await scene.scope_at(later)
        expected = window_fields(calls, ms(later), scene.zone)[SUMS_FIELD]
        sums = [Counts(*map(int, part.split(","))) for part in expected.split(";")[1:]]
        assert scope.windows == dict(zip(WINDOWS, sums, strict=True)), (seed, later)
