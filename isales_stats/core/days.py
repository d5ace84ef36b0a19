"""Days in a VDN's time zone: the buckets that make the daily counters reset at midnight.

A daily counter lives in a hash named after its date, so "today" rolls over by itself at
00:00:00.000 local time: no job races the clock, and a late event lands on its own day.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache

Clock = Callable[[], float]
"""Seconds since the epoch; injectable so that tests can cross midnight deterministically."""

system_clock: Clock = time.time
DAY_SECONDS = 86_400
MINUTE_MS = 60_000


def minute_start_ms(now: float) -> int:
    """The start of the minute of ``now`` (epoch seconds), in epoch milliseconds: the progress
    stream's minutes, as counting writes them and the progress read asks for them."""
    return int(now // 60) * MINUTE_MS


def today_in(zone: tzinfo, clock: Clock = system_clock) -> date:
    return datetime.fromtimestamp(clock(), zone).date()


def day_of(epoch_ms: int, zone: tzinfo) -> date:
    return datetime.fromtimestamp(epoch_ms // 1000, zone).date()


@lru_cache(maxsize=4096)
def day_expiry(day: date, zone: tzinfo, retention_days: int) -> int:
    """Epoch seconds at which the keys of ``day`` expire: its end plus the retention."""
    end = datetime.combine(day + timedelta(days=1 + retention_days), datetime.min.time(), zone)
    return int(end.timestamp())


@lru_cache(maxsize=4096)
def day_start(day: date, zone: tzinfo) -> int:
    """Epoch seconds of the first instant of ``day`` in ``zone`` (its midnight, or the end of a
    daylight-saving gap that swallows midnight)."""
    return int(datetime.combine(day, datetime.min.time(), zone).timestamp())


def hours_in(day: date, zone: tzinfo) -> int:
    """How many hours ``day`` has in ``zone``: 24, or 23 and 25 on daylight-saving changes (a
    part of an hour, where a zone shifts by 30 minutes, counts as an hour)."""
    length = day_start(day + timedelta(days=1), zone) - day_start(day, zone)
    return -(-length // 3600)


def hour_of_day(epoch_ms: int, day: date, zone: tzinfo) -> int:
    """The hour of ``day`` in which ``epoch_ms`` falls, counted from the day's start in elapsed
    time: 0..22 on a 23-hour day, 0..24 on a 25-hour one, so that the two 01:00s of a day whose
    clocks go back are hours 1 and 2, and no hour is counted twice or lost."""
    return min(max((epoch_ms // 1000 - day_start(day, zone)) // 3600, 0), 24)


def oldest_retained_day(zone: tzinfo, retention_days: int, clock: Clock = system_clock) -> date:
    """Events of days before this one no longer touch daily keys (they would be expired)."""
    return today_in(zone, clock) - timedelta(days=retention_days)


def retained_days(zone: tzinfo, retention_days: int, clock: Clock = system_clock) -> list[str]:
    """The labels of every day whose keys may still exist, oldest first: the retention, today,
    and tomorrow (an event within the clock-skew allowance may already be stamped there)."""
    oldest = oldest_retained_day(zone, retention_days, clock)
    return [(oldest + timedelta(days=n)).isoformat() for n in range(retention_days + 2)]
