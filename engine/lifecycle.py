"""Campaigns that end give their memory back: the sweeper that releases and deletes them.

Counting keeps, per campaign, the state that makes it exact (each record's state, the callIds
counted, each record's flags per day): almost all of the memory Redis holds. A campaign that
has ended needs none of it. The rules are in ``campaign_lifecycle.lua``, one atomic step per
campaign in its own Redis Cluster slot; this module finds the campaigns that are due, runs the
step for them and keeps the schedule and the VDN's index in line with what it did.

The schedule (``{P}:lifecycle``, a sorted set) holds when to look at each campaign next.
Counting puts a campaign on it when a process first sees it, and moves it to "now" when it
closes (engine/counting.py); the sweeper computes the real date from the campaign's lifecycle
hash and puts it back there. Any number of workers sweep at once: every step is idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from isales_stats.core.days import DAY_SECONDS, retained_days
from isales_stats.core.keys import LIFE_FIELDS
from isales_stats.core.notification_kinds import timestamp_of
from isales_stats.core.settings import Settings
from isales_stats.engine import metrics
from isales_stats.engine.counting import schedule_member
from isales_stats.engine.redis_connection import AnyRedis, LuaScript, run_pipeline, text_of
from isales_stats.engine.scripts import load_script
from isales_stats.engine.state import queue_state_size

if TYPE_CHECKING:  # context.py imports this module (LifecyclePolicy)
    from isales_stats.engine.context import CountingContext

log = logging.getLogger(__name__)

STEP_CAMPAIGN = load_script("campaign_lifecycle.lua")
# ZADD that Redis runs even when it is full (allow-oom): the sweeper's filing must not stop at a
# full Redis, which is when releasing memory matters most (SREM and ZREM need no memory).
ZADD_WHEN_FULL = LuaScript(
    "#!lua flags=allow-oom\nreturn redis.call('ZADD', KEYS[1], unpack(ARGV))"
)
# Campaigns stepped per round trip, and rounds per sweep: a backlog (the first sweep after an
# upgrade, a worker down for days) is worked off a bounded piece at a time.
SWEEP_BATCH = 200
SWEEP_ROUNDS = 25


@dataclass(frozen=True)
class LifecyclePolicy:
    """How long a campaign's parts live, in seconds (from Settings: ISALES_CAMPAIGN_*)."""

    idle_seconds: float
    grace_seconds: float
    retention_seconds: float
    tombstone_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> LifecyclePolicy:
        return cls(
            idle_seconds=settings.campaign_idle_days * DAY_SECONDS,
            grace_seconds=settings.campaign_release_grace_hours * 3600,
            retention_seconds=settings.campaign_retention_days * DAY_SECONDS,
            tombstone_seconds=settings.campaign_tombstone_days * DAY_SECONDS,
        )


@dataclass(frozen=True)
class Step:
    """What one lifecycle step found or did to a campaign."""

    vdn_id: int
    campaign_id: str
    state: str  # live, released, retained, deleted
    next_at: float  # epoch seconds of the next step; 0 when none is left
    keys_removed: int


@dataclass
class SweepReport:
    steps: list[Step] = field(default_factory=list)


class CampaignLifecycle:
    def __init__(self, redis: AnyRedis, context: CountingContext) -> None:
        self.redis = redis
        self.context = context
        self.layout = context.layout
        self.policy = context.policy
        self.zone_of = context.zone_of
        self.daily_retention_days = context.retention_days
        self.clock = context.clock

    async def sweep(self) -> SweepReport:
        """Step every campaign that is due (a bounded number per call)."""
        report = SweepReport()
        schedule = self.layout.lifecycle_schedule()
        for _ in range(SWEEP_ROUNDS):
            due: list[bytes] = await self.redis.zrangebyscore(  # type: ignore[assignment]
                schedule, "-inf", self.clock(), start=0, num=SWEEP_BATCH
            )
            if not due:
                break
            campaigns = [_parse_member(text_of(member)) for member in due]
            steps = await self._step(campaigns, "step")
            report.steps += steps
            if len(due) < SWEEP_BATCH:
                break
        return report

    async def delete(self, vdn_id: int, campaign_id: str) -> Step:
        """The operator's deletion: state and counters now, a tombstone left (idempotent)."""
        (step,) = await self._step([(vdn_id, campaign_id)], "delete")
        return step

    async def _step(self, campaigns: list[tuple[int, str]], mode: str) -> list[Step]:
        now = self.clock()
        today = int(now // DAY_SECONDS)
        policy = self.policy
        decided_at, notifying = timestamp_of(now), "1" if self.context.notifications else "0"

        days_of: dict[int, list[str]] = {}  # the same labels for every campaign of a VDN

        def queue(pipe: Any) -> None:
            for vdn_id, campaign_id in campaigns:
                if vdn_id not in days_of:
                    zone = self.zone_of(vdn_id)
                    days_of[vdn_id] = retained_days(zone, self.daily_retention_days, self.clock)
                days = days_of[vdn_id]
                STEP_CAMPAIGN.queue(
                    pipe,
                    [self.layout.campaign_life(vdn_id, campaign_id)],
                    [
                        self.layout.campaign_base(vdn_id, campaign_id),
                        int(now),
                        int(policy.idle_seconds),
                        int(policy.grace_seconds),
                        int(policy.retention_seconds),
                        max(1, int(policy.tombstone_seconds)),
                        mode,
                        today,
                        vdn_id,
                        campaign_id,
                        decided_at,
                        notifying,
                        *days,
                    ],
                )

        replies = await run_pipeline(self.redis, [STEP_CAMPAIGN], queue)
        steps = [
            Step(vdn_id, campaign_id, text_of(state), float(next_at), int(removed))
            for (vdn_id, campaign_id), (state, next_at, removed) in zip(
                campaigns, replies, strict=True
            )
        ]
        await self._file(steps)
        for step in steps:
            if step.keys_removed:
                metrics.CAMPAIGNS_ENDED.labels(step.state).inc()
            if step.keys_removed or mode == "delete":  # an operator's deletion is always logged
                log.info(
                    "campaign %s: vdn=%d campaign=%r keys_removed=%d (%s)",
                    step.state, step.vdn_id, step.campaign_id, step.keys_removed, mode,
                )  # fmt: skip
        return steps

    async def _file(self, steps: list[Step]) -> None:
        """The schedule and the index after the steps: the next date, or off both when deleted.

        After the scripts, never before: a sweeper that stops in between leaves a campaign on
        the schedule, and the next sweep finds it done and files it again.

        A released campaign leaves the VDN's live index for its released one (scored by
        when its counters go): a VDN's read walks what lives, however many campaigns ended.
        """
        schedule = self.layout.lifecycle_schedule()
        due, wake = self.layout.outbox_due(), self.layout.outbox_wake_channel()
        now_ms = int(self.clock() * 1000)

        def queue(pipe: Any) -> None:
            for step in steps:
                member = schedule_member(step.vdn_id, step.campaign_id)
                live = self.layout.vdn_campaigns(step.vdn_id)
                released = self.layout.vdn_released_campaigns(step.vdn_id)
                if step.state == "deleted":
                    pipe.srem(live, step.campaign_id)
                    pipe.zrem(released, step.campaign_id)
                    pipe.zrem(schedule, member)
                    continue
                if step.state == "released" and self.context.notifications:
                    # campaign.released was written with the release: due now. A sweeper that
                    # stops before this leaves it to the notification sweep (a non-empty
                    # outbox is put back in the due set).
                    ZADD_WHEN_FULL.queue(pipe, [due], ["NX", now_ms, member])
                    pipe.publish(wake, member)
                if step.state in ("released", "retained"):
                    pipe.srem(live, step.campaign_id)
                    ZADD_WHEN_FULL.queue(pipe, [released], [step.next_at, step.campaign_id])
                ZADD_WHEN_FULL.queue(pipe, [schedule], ["XX", step.next_at, member])

        await run_pipeline(self.redis, [ZADD_WHEN_FULL], queue)

    async def describe(self, vdn_id: int) -> list[dict[str, Any]]:
        """Every campaign of a VDN's indexes, live and released: its lifecycle, its next step,
        what it holds.

        A deleted campaign still in an index is taken off it here: a sweeper's filing of its
        release that lands after another's filing of its deletion (an operator's, say) puts it
        back in the released index, where no sweep looks at it again.
        """
        live, released = await run_pipeline(
            self.redis,
            [],
            lambda pipe: (
                pipe.smembers(self.layout.vdn_campaigns(vdn_id)),
                pipe.zrange(self.layout.vdn_released_campaigns(vdn_id), 0, -1),
            ),
        )
        campaign_ids = sorted({text_of(member) for member in [*live, *released]})
        schedule = self.layout.lifecycle_schedule()

        def queue(pipe: Any) -> None:
            for campaign_id in campaign_ids:
                pipe.hmget(self.layout.campaign_life(vdn_id, campaign_id), list(LIFE_FIELDS))
                pipe.zscore(schedule, schedule_member(vdn_id, campaign_id))
                queue_state_size(pipe, self.layout, vdn_id, campaign_id)

        replies = await run_pipeline(self.redis, [], queue) if campaign_ids else []
        rows, ghosts = [], []
        for index, campaign_id in enumerate(campaign_ids):
            life, next_at, records, calls = replies[4 * index : 4 * index + 4]
            active, closed, released, deleted = (
                None if value is None else int(value) for value in life
            )
            if deleted:
                ghosts.append(campaign_id)
                continue
            state = "released" if released else "closed" if closed else "live"
            rows.append(
                {
                    "campaignId": campaign_id,
                    "state": state,
                    "lastActiveDay": active,
                    "closedAt": closed,
                    "releasedAt": released,
                    "nextStepAt": None if next_at is None else float(next_at),
                    "records": int(records),
                    "callIds": int(calls),
                }
            )
        if ghosts:
            await self._file([Step(vdn_id, campaign_id, "deleted", 0, 0) for campaign_id in ghosts])
        return rows


def _parse_member(member: str) -> tuple[int, str]:
    vdn, _, campaign_id = member.partition(":")
    return int(vdn), campaign_id
