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


def today_in(zone: tzinfo, clock: Clock = system_clock) -> date:
    return datetime.fromtimestamp(clock(), zone).date()


def day_of(epoch_ms: int, zone: tzinfo) -> date:
    return datetime.fromtimestamp(epoch_ms // 1000, zone).date()


@lru_cache(maxsize=4096)
def day_expiry(day: date, zone: tzinfo, retention_days: int) -> int:
    """Epoch seconds at which the keys of ``day`` expire: its end plus the retention."""
    end = datetime.combine(day + timedelta(days=1 + retention_days), datetime.min.time(), zone)
    return int(end.timestamp())


def oldest_retained_day(zone: tzinfo, retention_days: int, clock: Clock = system_clock) -> date:
    """Events of days before this one no longer touch daily keys (they would be expired)."""
    return today_in(zone, clock) - timedelta(days=retention_days)


def retained_days(zone: tzinfo, retention_days: int, clock: Clock = system_clock) -> list[str]:
    """The labels of every day whose keys may still exist, oldest first: the retention, today,
    and tomorrow (an event within the clock-skew allowance may already be stamped there)."""
    oldest = oldest_retained_day(zone, retention_days, clock)
    return [(oldest + timedelta(days=n)).isoformat() for n in range(retention_days + 2)]
