"""The counting script's contract: what Python sends it, each field named once.

The counting script (assembled from the parts in ``engine/count_events/``) takes a campaign's
events and the call's settings. Both sides must agree on where each value stands; here the
positions are defined once, as the order of two named tuples, and both sides follow them:

- Python builds an event with :func:`packed_event` and a call's arguments with
  :class:`CountingArguments`, by keyword;
- the Lua prelude (``engine/scripts.py``) is rendered from the same tuples: ``EVENT.data_id``
  is the position of ``data_id`` in an event, ``ARG.minute_ms`` is the value of that argument.

No Lua or Python line spells a position: ``tests/test_counting_contract.py`` checks both sides
without Redis, and fails when one side reorders a field.
"""

from __future__ import annotations

from typing import NamedTuple


class PackedEvent(NamedTuple):
    """One event as the counting script reads it (an array in the events' JSON, in this order)."""

    # "a" data.added | "c" call.result | "r" data.removed | "x" campaign.closed (a campaign's
    # end: only the kind matters, the rest is empty)
    kind: str
    data_id: str
    call_id: str  # "" unless kind is "c"
    batch_id: str  # "" when the record has no batch
    connected: int  # 1 | 0
    final: int  # 1 | 0: the call finished its record
    # "YYYY-MM-DD" in the VDN's zone, or "" when the day is older than the retention
    day: str
    expire_at: int  # epoch seconds at which that day's keys expire
    # the hour of that day in which it occurred, 0..24, counted from the day's start
    # (isales_stats/core/days.py: a day may have 23 or 25 hours)
    hour: int
    fail_code: str  # a failed call's failCode ("" when it gave none)
    # when it occurred, in minutes since the epoch (occurredAt // 60000): its rolling-window
    # buckets (isales_stats/core/windows.py)
    minute: int


class CountingArguments(NamedTuple):
    """The script's ARGV, in this order. Its one key (KEYS[1]) is the campaign's totals hash,
    which names the Redis Cluster slot of every key the script builds from ``campaign_base``."""

    # the campaign's key base, "{prefix}:{vdnId:campaignId}" (isales_stats/core/keys.py)
    campaign_base: str
    # the events, a JSON array of PackedEvent arrays (one argument: packing thousands of small
    # arguments costs the Python client more than the whole script costs Redis)
    events: bytes
    # the start of the current minute, epoch milliseconds (the worker's clock): the progress
    # stream records calls, connects and finished records per arrival minute
    minute_ms: int
    max_batches: int  # the most batches a campaign may have (0: no limit)
    # today on the worker's clock in days since the epoch: the campaign's last active day (the
    # lifecycle's idle clock, engine/campaign_lifecycle.lua)
    active_day: int
    now: int  # epoch seconds on the worker's clock: when a campaign.closed is counted
    # today in the VDN's zone on the worker's clock, "YYYY-MM-DD": the day whose daily counters
    # a change of the campaign carries
    today: str
    changes_kept: int  # the changes to keep in the campaign's change stream (0: record none)
    change_channel: str  # the VDN's change channel (PUBLISH), told the campaignId of a change
    campaign_id: str
    # the minute of a UTC hour at which the VDN's hours of today start (0 for whole-hour zones,
    # 30 for +05:30): an hour bucket is (minute - hour_shift) // 60 (core/windows.py)
    hour_shift: int
    # the failCodes of an abandoned call (ISALES_ABANDON_FAIL_CODES), comma-separated
    abandon_fail_codes: str
    # --- notifications (engine/count_events/notifications.lua) ---
    notifications: int  # 1: decide and write them (ISALES_NOTIFICATIONS=on) | 0: write nothing
    vdn_id: int  # a notification's data names its VDN
    # when a notification of this call is decided, on the worker's clock: ISO 8601 UTC with
    # milliseconds and "Z" (isales_stats/core/notification_kinds.py, timestamp_of)
    decided_at: str
    # the VDN's abandon limit and its warning level as fractions of the live calls, in integers:
    # "overNumerator,overDenominator,warningNumerator,warningDenominator" (status_fractions)
    abandon_fractions: str
    abandon_limit_percent: str  # the same limit as a percent, as configured ("3.0")


# An event as sent: a plain tuple in PackedEvent's order (orjson writes tuples, not NamedTuples).
EventArray = tuple[str, str, str, str, int, int, str, int, int, str, int]


def packed_event(
    kind: str,
    data_id: str = "",
    call_id: str = "",
    batch_id: str = "",
    *,
    connected: bool = False,
    final: bool = False,
    day: str = "",
    expire_at: int = 0,
    hour: int = 0,
    fail_code: str = "",
    minute: int = 0,
) -> EventArray:
    """An event for the script; the flags as the 1 and 0 it compares with.

    The one place in Python that writes PackedEvent's order out (a tuple costs the worker a
    sixth of a NamedTuple built by keyword, per event); tests/test_counting_contract.py holds
    it to PackedEvent field by field.
    """
    return (
        kind,
        data_id,
        call_id,
        batch_id,
        1 if connected else 0,
        1 if final else 0,
        day,
        expire_at,
        hour,
        fail_code,
        minute,
    )


# After the verdicts, the reply holds this letter when the campaign has notifications the
# due set may not know of (engine/counting.py puts the campaign there, then clears the mark).
ANNOUNCE = "N"
# The script's verdict per event, one letter each in its reply.
APPLIED, DUPLICATE, CONFLICT, OVER_LIMIT, RELEASED, DELETED = "A", "D", "C", "L", "R", "G"
VERDICTS = {
    "APPLIED": APPLIED,
    "DUPLICATE": DUPLICATE,
    "CONFLICT": CONFLICT,
    "OVER_LIMIT": OVER_LIMIT,
    "RELEASED": RELEASED,
    "DELETED": DELETED,
}
