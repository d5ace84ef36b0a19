"""Reading history back: a scope's days and hours, and its failed calls by failCode.

A scope is a campaign or one of its batches. What is read comes from the keys the counting
script keeps per day (engine/count_events/): the day's packed row, its hours hash and its
fails hash, all expiring with the day (``ISALES_DAILY_RETENTION_DAYS``). One Lua script reads a
scope's days at once (read_history.lua), so that a day's row and the totals come from one
instant.

Of the five totals, two are flows, the calls and the connected calls: a day's end value is
today's total less the calls of the days after it, which the retention keeps whenever it keeps
that day. The other three (totalCount, unCallCount, totalFinishCount) are states of records, and
a record's state at a past instant depends on events that may arrive in any order: keeping it
would mean keeping every record's history. They are left out of history (docs/api.md,
"History").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from isales_stats.core.keys import DAILY_COUNTERS, HOUR_COUNTERS, TOTAL_COUNTERS
from isales_stats.engine.context import CountingContext
from isales_stats.engine.reads import PipelinedRead, run_read
from isales_stats.engine.redis_connection import AnyRedis, text_of
from isales_stats.engine.scripts import load_script
from isales_stats.engine.statistics import CorruptCounters

READ_HISTORY = load_script("read_history.lua")

# The call totals whose value at a day's end history gives, and the daily counter of each.
FLOW_TOTALS = {"totalCalledCount": "dailyCalledCount", "totalCallSucc": "dailyCallSucc"}
_HOUR_COUNTER_OF = {short: name for name, short in HOUR_COUNTERS.items()}


@dataclass(frozen=True)
class DayHistory:
    """One day of a scope: its daily counters, the call totals at its end, and per hour of the
    day (hours since its start) the same daily counters, when hours were asked for."""

    day: date
    daily: dict[str, int]
    totals_at_end: dict[str, int]
    hours: dict[int, dict[str, int]] = field(default_factory=dict)


class HistoryReader:
    def __init__(self, redis: AnyRedis, context: CountingContext) -> None:
        self.redis = redis
        self.layout = context.layout

    async def fail_data(
        self,
        vdn_id: int,
        campaign_id: str,
        days: Sequence[date],
        batch_id: str | None = None,
    ) -> list[dict[str, int]]:
        """Per day of ``days``, the failed calls by failCode ({} when none, or unknown)."""
        return await run_read(self.redis, self.fail_data_read(vdn_id, campaign_id, days, batch_id))

    def fail_data_read(
        self,
        vdn_id: int,
        campaign_id: str,
        days: Sequence[date],
        batch_id: str | None = None,
    ) -> PipelinedRead[list[dict[str, int]]]:
        """``fail_data`` as a ``PipelinedRead`` (engine/reads.py): one round trip."""

        async def fail_data(replies: list[Any]) -> list[dict[str, int]]:
            ((_, _, details),) = replies
            return [
                {text_of(code): _count(campaign_id, count) for code, count in _pairs(flat)}
                for flat in details
            ]

        queue = self._queue_read(vdn_id, campaign_id, batch_id, "fails", days, [])
        return PipelinedRead(queue, fail_data, (READ_HISTORY,))

    async def days(
        self,
        vdn_id: int,
        campaign_id: str,
        days: Sequence[date],
        today: date,
        batch_id: str | None = None,
        hours: bool = False,
    ) -> list[DayHistory]:
        """``days`` (ascending, none after tomorrow) of a scope; zeros when it is unknown."""
        read = self.days_read(vdn_id, campaign_id, days, today, batch_id, hours)
        return await run_read(self.redis, read)

    def days_read(
        self,
        vdn_id: int,
        campaign_id: str,
        days: Sequence[date],
        today: date,
        batch_id: str | None = None,
        hours: bool = False,
    ) -> PipelinedRead[list[DayHistory]]:
        """``days`` as a ``PipelinedRead`` (engine/reads.py): one round trip."""
        later = _days_between(days[-1], today + timedelta(days=1))
        queue = self._queue_read(
            vdn_id, campaign_id, batch_id, "hours" if hours else "", days, later
        )

        async def history(replies: list[Any]) -> list[DayHistory]:
            ((totals, rows, details),) = replies
            return _day_histories(campaign_id, days, totals, rows, details, hours)

        return PipelinedRead(queue, history, (READ_HISTORY,))

    def _queue_read(
        self,
        vdn_id: int,
        campaign_id: str,
        batch_id: str | None,
        detail: str,
        days: Sequence[date],
        later: Sequence[date],
    ) -> Callable[[Any], None]:
        """What queues read_history.lua's call for a scope's ``days`` (and the ``later`` ones,
        whose calls the totals at the days' ends leave out)."""

        def queue(pipe: Any) -> None:
            READ_HISTORY.queue(
                pipe,
                [self.layout.campaign_rows(vdn_id, campaign_id)],
                [
                    batch_id or "",
                    detail,
                    len(days),
                    *(day.isoformat() for day in (*days, *later)),
                ],
            )

        return queue


def _day_histories(
    campaign_id: str,
    days: Sequence[date],
    totals: bytes | None,
    rows: list[Any],
    details: list[Any],
    hours: bool,
) -> list[DayHistory]:
    dailies = [_daily_row(campaign_id, row) for row in rows]
    # Walk back from now: the totals at a day's end are those at the next day's end less
    # the next day's calls.
    at_end = _flow_totals(campaign_id, totals)
    ends: list[dict[str, int]] = []
    for daily in reversed(dailies):
        ends.append(dict(at_end))
        for total, daily_name in FLOW_TOTALS.items():
            at_end[total] -= daily[daily_name]
    ends.reverse()
    return [
        DayHistory(
            day,
            dailies[i],
            ends[i],
            _hours(campaign_id, details[i]) if hours else {},
        )
        for i, day in enumerate(days)
    ]


def _days_between(last: date, until: date) -> list[date]:
    """The days after ``last`` up to ``until``, inclusive."""
    return [last + timedelta(days=n) for n in range(1, (until - last).days + 1)]


def _flow_totals(campaign_id: str, row: bytes | None) -> dict[str, int]:
    values = _numbers(campaign_id, row, len(TOTAL_COUNTERS))
    return {total: values[TOTAL_COUNTERS.index(total)] for total in FLOW_TOTALS}


def _daily_row(campaign_id: str, row: bytes | None) -> dict[str, int]:
    return dict(zip(DAILY_COUNTERS, _numbers(campaign_id, row, len(DAILY_COUNTERS)), strict=True))


def _numbers(campaign_id: str, row: bytes | None, expected: int) -> list[int]:
    """A packed row's integers; zeros for a missing row (nothing that day, or unknown)."""
    if row is None:
        return [0] * expected
    values = [_count(campaign_id, value) for value in row.split(b",")]
    if len(values) != expected:
        raise CorruptCounters(f"campaign {campaign_id!r}: a stored row is not {expected} counters")
    return values


def _hours(campaign_id: str, flat: list[bytes]) -> dict[int, dict[str, int]]:
    hours: dict[int, dict[str, int]] = {}
    for name, count in _pairs(flat):
        hour, _, short = text_of(name).partition(":")
        counter = _HOUR_COUNTER_OF.get(short)
        if counter is None or not hour.isdigit():
            raise CorruptCounters(f"campaign {campaign_id!r}: an hour field {name!r:.40}")
        hours.setdefault(int(hour), dict.fromkeys(HOUR_COUNTERS, 0))[counter] = _count(
            campaign_id, count
        )
    return hours


def _pairs(flat: list[bytes]) -> list[tuple[bytes, bytes]]:
    return list(zip(flat[0::2], flat[1::2], strict=True))


def _count(campaign_id: str, value: bytes) -> int:
    """A stored count: a non-negative integer, or the store was written by something else."""
    if not value.isdigit():
        raise CorruptCounters(f"campaign {campaign_id!r}: a stored count is {value!r:.40}")
    return int(value)
