"""Rolling windows: the buckets an abandon rate and a campaign's pace are summed from.

A scope (a campaign, or one of its batches) keeps its calls in buckets of three sizes, each
named by a whole number that grows by one from a bucket to the next, so that the counting
script and the read script can walk from one to the next without knowing any calendar:

- a **minute**: minutes since the epoch (``epoch_ms // 60_000``); every zone's minutes start
  on a UTC minute;
- an **hour** of the VDN's zone: ``(minute - shift) // 60``, ``shift`` the minute of the UTC
  hour at which the zone's hours start (0 for whole-hour offsets, 30 for +05:30). Hours are
  elapsed time from the day's start, as the history's hours are: a day whose clocks change has
  23 or 25 of them, and the two 01:00s of a day whose clocks go back are two hours;
- a **day** of the VDN's zone: days since 1970-01-01 of its date.

A window is the current bucket and the ones before it: the last 5, 15 and 60 minutes, the
rolling 24 hours (the current hour so far and the 23 before it) and the rolling 30 days (today
so far and the 29 days before it, so that a day leaves the window at the VDN's midnight). A
bucket stamped after the current one (an event within the clock-skew allowance) is in every
window that its predecessors are in. docs/adr/0008-rolling-windows.md says why and how.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo

from isales_stats.core.days import MINUTE_MS, day_of, day_start

EPOCH_DAY = date(1970, 1, 1).toordinal()

# The windows, by name: which bucket kind they sum, and how many buckets (the current one
# included). The order is the order of the sums in a window hash's "sums" field.
WINDOWS = {
    "m5": ("minute", 5),
    "m15": ("minute", 15),
    "m60": ("minute", 60),
    "h24": ("hour", 24),
    "d30": ("day", 30),
}
# What each bucket, and each window's sum, holds, in this order ("12,9,1,3").
BUCKET_FIELDS = ("calls", "connects", "abandoned", "finished")
# A bucket's field in a window hash: this letter, then its number ("m29412345").
BUCKET_PREFIX = {"minute": "m", "hour": "h", "day": "d"}
# The window hash's other fields: the scope's whole life (BUCKET_FIELDS), the minute of its
# latest call, and the windows' sums as of the buckets ("now") they were last worked out for.
LIFE_FIELD, LAST_CALL_FIELD, SUMS_FIELD = "life", "last", "sums"


def day_number(day: date) -> int:
    """Days since 1970-01-01 of a date (the day bucket's number)."""
    return day.toordinal() - EPOCH_DAY


def day_of_number(number: int) -> date:
    return date.fromordinal(number + EPOCH_DAY)


def hour_shift(day: date, zone: tzinfo) -> int:
    """The minute of a UTC hour at which ``zone``'s hours of ``day`` start (0..59)."""
    return (day_start(day, zone) // 60) % 60


def hour_number(minute: int, shift: int) -> int:
    """The hour bucket of an epoch minute, in a zone whose hours start ``shift`` minutes after
    a UTC hour."""
    return (minute - shift) // 60


@dataclass(frozen=True, slots=True)
class Now:
    """The current bucket of each kind, at one instant in one zone."""

    minute: int
    hour: int
    day: int

    @classmethod
    def at(cls, epoch_ms: int, zone: tzinfo) -> Now:
        minute = epoch_ms // MINUTE_MS
        today = day_of(epoch_ms, zone)
        return cls(minute, hour_number(minute, hour_shift(today, zone)), day_number(today))

    def current(self, kind: str) -> int:
        return {"minute": self.minute, "hour": self.hour, "day": self.day}[kind]

    def first_bucket(self, window: str) -> int:
        """The oldest bucket in ``window`` (WINDOWS): buckets from it on are summed."""
        kind, size = WINDOWS[window]
        return self.current(kind) - (size - 1)


def minute_start(minute: int, zone: tzinfo) -> datetime:
    """When an epoch minute starts, in ``zone``."""
    return datetime.fromtimestamp(minute * 60, UTC).astimezone(zone)
