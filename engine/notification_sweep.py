"""The workers' sweep of time-based notifications: campaign.stalled and day.closed.

Counting decides what events cause (engine/count_events/notifications.lua); what the clock
causes is decided here, on a timer of every worker, by a script per campaign in its own slot
(notification_sweep.lua) that checks and sets the campaign's notified hash: two workers
sweeping at once write one entry. A campaign given an entry is put in the due set and
published on the wake channel, as counting does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from isales_stats.core.days import MINUTE_MS, today_in
from isales_stats.core.notification_kinds import timestamp_of
from isales_stats.engine.context import CountingContext
from isales_stats.engine.counting import schedule_member
from isales_stats.engine.redis_connection import AnyRedis, run_pipeline, text_of
from isales_stats.engine.scripts import load_script

SWEEP_CAMPAIGN = load_script("notification_sweep.lua")
SWEEP_BATCH = 500


class NotificationSweep:
    def __init__(self, redis: AnyRedis, context: CountingContext, stall_minutes: int) -> None:
        self.redis = redis
        self.context = context
        self.layout = context.layout
        self.stall_minutes = stall_minutes

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
        ended: dict[int, str] = {}  # VDN -> the day that ended last in its zone

        def queue(pipe: Any) -> None:
            for vdn_id, campaign_id in campaigns:
                if vdn_id not in ended:
                    today = today_in(self.context.zone_of(vdn_id), self.context.clock)
                    ended[vdn_id] = (today - timedelta(days=1)).isoformat()
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
                    ],
                )

        replies = await run_pipeline(self.redis, [SWEEP_CAMPAIGN], queue)
        written = [c for c, reply in zip(campaigns, replies, strict=True) if int(reply)]
        if written:
            members = [schedule_member(*campaign) for campaign in written]
            due, wake = self.layout.outbox_due(), self.layout.outbox_wake_channel()

            def announce(pipe: Any) -> None:
                pipe.zadd(due, dict.fromkeys(members, int(now * 1000)), nx=True)
                for member in members:
                    pipe.publish(wake, member)

            await run_pipeline(self.redis, [], announce)
        return written
