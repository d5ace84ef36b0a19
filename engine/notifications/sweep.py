"""The workers' sweep of time-based notifications: campaign.stalled, abandon status changed by
time passing, and day.closed.

Counting decides what events cause (engine/count_events/notifications.lua); what the clock
causes is decided here, on a timer of every worker, by a script per campaign in its own slot
(sweep.lua, beside this module) that checks and sets the campaign's notified hash: two workers
sweeping at once write one entry. A campaign given an entry is put in the due set and
published on the wake channel, as counting does; a campaign whose outbox holds entries is put
back in the due set too (a second safety net: a worker that died between its counting script
and its announcement).

A rolling window's abandon status changes as old calls leave it. For a campaign with a window
notified other than "ok", the sweep reads the windows as the abandon-rate interface does
(engine/decisions.py: the sums corrected for the time passed) and compares them with the same
integer fractions (AbandonLimit.status); the script writes the change only if no call was
counted since the read (the window hash's sums are the ones read).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import orjson
from redis.exceptions import RedisError

from isales_stats.core.days import MINUTE_MS, retained_days, today_in
from isales_stats.core.decisions import AbandonLimit, ScopeCounts
from isales_stats.core.notification_kinds import (
    ABANDON_STATUS_FIELD,
    KIND_OF_STATUS,
    NOTIFIED_WINDOWS,
    timestamp_of,
)
from isales_stats.core.windows import SUMS_FIELD
from isales_stats.engine.context import CountingContext
from isales_stats.engine.counting import schedule_member
from isales_stats.engine.decisions import DecisionsReader
from isales_stats.engine.reads import reads_together, run_read
from isales_stats.engine.redis_connection import AnyRedis, run_pipeline, text_of
from isales_stats.engine.scripts import load_script
from isales_stats.engine.statistics import CorruptCounters

log = logging.getLogger(__name__)

SWEEP_CAMPAIGN = load_script("notifications/sweep.lua")
SWEEP_BATCH = 500
# How often every worker sweeps: a stall, a day's end or a window's change is notified within
# this (and a lost announcement recovered).
NOTIFICATION_SWEEP_SECONDS = 10.0
WROTE, PENDING = 2, 1  # the script's answers (0: nothing to deliver)
_STATUS_FIELDS = [ABANDON_STATUS_FIELD + window for window in NOTIFIED_WINDOWS]


class NotificationSweep:
    def __init__(self, redis: AnyRedis, context: CountingContext, stall_minutes: int) -> None:
        self.redis = redis
        self.context = context
        self.layout = context.layout
        self.stall_minutes = stall_minutes
        self.decisions = DecisionsReader(redis, context)

    async def sweep(self) -> list[tuple[int, str]]:
        """Every campaign on the lifecycle's schedule (all that are not deleted), a batch at a
        time; returns those given an entry."""
        schedule = self.layout.lifecycle_schedule()
        written: list[tuple[int, str]] = []
        start = 0
        while True:
            members: list[bytes] = await self.redis.zrange(  # type: ignore[assignment]
                schedule, start, start + SWEEP_BATCH - 1
            )
            if not members:
                return written
            campaigns = []
            for member in members:
                vdn, _, campaign_id = text_of(member).partition(":")
                campaigns.append((int(vdn), campaign_id))
            written += await self._sweep(campaigns)
            start += SWEEP_BATCH

    async def _sweep(self, campaigns: list[tuple[int, str]]) -> list[tuple[int, str]]:
        now = self.context.clock()
        decided_at, minute = timestamp_of(now), int(now * 1000) // MINUTE_MS
        ended: dict[int, str] = {}  # VDN -> the days that ended, within the retention
        changes = await self._abandon_changes(campaigns)

        def queue(pipe: Any) -> None:
            for vdn_id, campaign_id in campaigns:
                if vdn_id not in ended:
                    ended[vdn_id] = self._ended_days(vdn_id)
                sums_read, windows = changes.get((vdn_id, campaign_id), ("", []))
                SWEEP_CAMPAIGN.queue(
                    pipe,
                    [self.layout.campaign_notified(vdn_id, campaign_id)],
                    [
                        self.layout.campaign_base(vdn_id, campaign_id),
                        vdn_id,
                        campaign_id,
                        decided_at,
                        minute,
                        self.stall_minutes,
                        ended[vdn_id],
                        sums_read,
                        *windows,
                    ],
                )

        replies = await run_pipeline(self.redis, [SWEEP_CAMPAIGN], queue)
        written = [c for c, reply in zip(campaigns, replies, strict=True) if int(reply) == WROTE]
        pending = [c for c, reply in zip(campaigns, replies, strict=True) if int(reply)]
        if pending:
            due, wake = self.layout.outbox_due(), self.layout.outbox_wake_channel()

            def announce(pipe: Any) -> None:
                members = [schedule_member(*campaign) for campaign in pending]
                pipe.zadd(due, dict.fromkeys(members, int(now * 1000)), nx=True)
                for campaign in written:
                    pipe.publish(wake, schedule_member(*campaign))

            await run_pipeline(self.redis, [], announce)
        return written

    def _ended_days(self, vdn_id: int) -> str:
        """The days that ended in the VDN's zone and may still have counters, oldest first."""
        zone = self.context.zone_of(vdn_id)
        yesterday = (today_in(zone, self.context.clock) - timedelta(days=1)).isoformat()
        days = retained_days(zone, self.context.retention_days, self.context.clock)
        return ",".join(day for day in days if day <= yesterday)

    async def _abandon_changes(
        self, campaigns: list[tuple[int, str]]
    ) -> dict[tuple[int, str], tuple[str, list[str]]]:
        """Per campaign with a window notified other than "ok" whose status is now another:
        the window hash's sums as read before the windows, and the script's five values per
        window changed."""

        def read_marks(pipe: Any) -> None:
            for vdn_id, campaign_id in campaigns:
                notified = self.layout.campaign_notified(vdn_id, campaign_id)
                pipe.hmget(notified, _STATUS_FIELDS)
                pipe.hget(self.layout.scope_window(vdn_id, campaign_id), SUMS_FIELD)

        replies = await run_pipeline(self.redis, [], read_marks)
        watched: list[tuple[tuple[int, str], list[str], str]] = []
        for index, campaign in enumerate(campaigns):
            statuses = [text_of(s) if s is not None else "ok" for s in replies[2 * index]]
            sums = replies[2 * index + 1]
            if sums is not None and any(status != "ok" for status in statuses):
                watched.append((campaign, statuses, text_of(sums)))
        if not watched:
            return {}
        try:
            counts = await run_read(
                self.redis,
                reads_together(
                    [self.decisions.counts_read(vdn, campaign) for (vdn, campaign), _, _ in watched]
                ),
            )
        except CorruptCounters as error:
            log.warning("notification sweep: abandon status not re-evaluated: %s", error)
            return {}
        changes = {}
        for (campaign, statuses, sums), read in zip(watched, counts, strict=True):
            if not read.campaigns:
                continue
            windows = self._changed_windows(campaign, statuses, read.campaigns[0].counts)
            if windows:
                changes[campaign] = (sums, windows)
        return changes

    def _changed_windows(
        self, campaign: tuple[int, str], statuses: list[str], scope: ScopeCounts
    ) -> list[str]:
        vdn_id, campaign_id = campaign
        percent = self.context.abandon_limit_of(vdn_id)
        limit = AbandonLimit(percent, self.context.abandon_warning_fraction)
        values: list[str] = []
        for (window, part), status_read in zip(NOTIFIED_WINDOWS.items(), statuses, strict=True):
            counts = scope.part(part)
            abandoned = counts.abandoned
            denominator = counts.connects + abandoned
            status = limit.status(abandoned, denominator) if denominator else "ok"
            if status == status_read:
                continue
            data = {
                "vdnId": vdn_id,
                "campaignId": campaign_id,
                "window": window,
                "abandoned": abandoned,
                "denominator": denominator,
                "ratePercent": percent_of(abandoned, denominator),
                "limitPercent": float(percent),
            }
            values += [
                ABANDON_STATUS_FIELD + window,
                status_read,
                status,
                KIND_OF_STATUS[status],
                orjson.dumps(data).decode(),
            ]
        return values


def percent_of(part: int, whole: int) -> float | None:
    """``part / whole`` in percent, two decimals, halves up, as counting writes a rate."""
    if whole == 0:
        return None
    return (20000 * part + whole) // (2 * whole) / 100


async def sweep_notifications(sweep: NotificationSweep) -> bool:
    """One sweep; False (logged) when Redis failed it: the next timer tick tries again."""
    try:
        await sweep.sweep()
    except (RedisError, OSError) as error:
        log.warning("notification sweep failed (%s); next in %.0f s",
                    error, NOTIFICATION_SWEEP_SECONDS)  # fmt: skip
        return False
    return True
