"""Counting call events into Redis: the counting rules applied atomically, a campaign at a time.

The rules themselves run inside Redis (``engine/count_events/``), next to the state they need, so
that a counter change and the bookkeeping that makes it idempotent are one atomic step. This
module prepares the batches: it groups events by campaign (one script call each, one Redis
Cluster slot each), works out each event's day in its VDN's zone, and sends every call of a
batch in one pipelined round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

import orjson

from isales_stats.core.days import (
    DAY_SECONDS,
    MINUTE_MS,
    Clock,
    day_expiry,
    day_of,
    hour_of_day,
    minute_start_ms,
    oldest_retained_day,
)
from isales_stats.core.decisions import AbandonLimit
from isales_stats.core.events import CallEvent, EventKind
from isales_stats.core.keys import KeyLayout
from isales_stats.core.notification_kinds import NOTIFIED_FIELDS, status_fractions, timestamp_of
from isales_stats.core.windows import hour_shift
from isales_stats.engine.contract import (
    ANNOUNCE,
    APPLIED,
    CONFLICT,
    DELETED,
    DUPLICATE,
    RELEASED,
    CountingArguments,
    EventArray,
    packed_event,
)
from isales_stats.engine.redis_connection import (
    AnyRedis,
    LuaScript,
    ReplyGroups,
    run_pipeline,
    text_of,
)
from isales_stats.engine.scripts import load_count_events

if TYPE_CHECKING:  # context.py imports this module (CountingLimits)
    from isales_stats.engine.context import CountingContext

COUNT_EVENTS = load_count_events()
STORE_HIGHER_OFFSETS = LuaScript(
    """-- KEYS[1] a topic's offsets hash; ARGV partition, offset, partition, offset...: store
    -- each offset unless a higher one is stored; one HSET of those that grow.
    local higher = {}
    for i = 1, #ARGV, 2 do
      local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[i]))
      if stored == nil or stored < tonumber(ARGV[i + 1]) then
        higher[#higher + 1] = ARGV[i]
        higher[#higher + 1] = ARGV[i + 1]
      end
    end
    if #higher > 0 then
      redis.call('HSET', KEYS[1], unpack(higher))
    end
    return 0"""
)

# KEYS[1] a VDN's campaign index; ARGV[1] the most campaigns it may hold; ARGV[2...] the
# campaignIds of a batch. Lists those already listed or that still fit; returns 1 (listed) or
# 0 (beyond the limit) per campaignId. Atomic, so workers counting the same VDN on different
# partitions never list one campaign too many between them.
ADMIT_CAMPAIGNS = LuaScript(
    """local limit, size = tonumber(ARGV[1]), redis.call('SCARD', KEYS[1])
    local verdicts, new = {}, {}
    for i = 2, #ARGV do
      if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then
        verdicts[#verdicts + 1] = 1
      elseif size < limit then
        size = size + 1
        new[#new + 1] = ARGV[i]
        verdicts[#verdicts + 1] = 1
      else
        verdicts[#verdicts + 1] = 0
      end
    end
    if #new > 0 then
      redis.call('SADD', KEYS[1], unpack(new))
    end
    return verdicts"""
)

CLOSED = EventKind.CAMPAIGN_CLOSED
# An event's kind as the counting script reads it (PackedEvent.kind).
_KIND_CODES = {
    EventKind.DATA_ADDED: "a",
    EventKind.CALL_RESULT: "c",
    EventKind.DATA_REMOVED: "r",
    EventKind.CAMPAIGN_CLOSED: "x",
}
# The changes a campaign's change stream keeps for push by default (Settings.push_changes_kept).
DEFAULT_CHANGES_KEPT = 128
# Campaigns a process remembers having listed and scheduled (see EventCounter._known): past
# this many it forgets them all and lists again, a no-op in Redis, rather than grow forever.
KNOWN_CAMPAIGNS_REMEMBERED = 100_000


@dataclass(frozen=True)
class CountingLimits:
    """Caps on what producers may open (0: none). Hostile or broken input would otherwise grow
    a VDN's index, and the whole-VDN read that walks it, without bound; events beyond a cap go
    to the dead-letter topic (category ``limit``), never counted."""

    campaigns_per_vdn: int = 0
    batches_per_campaign: int = 0


NO_LIMITS = CountingLimits()


@dataclass
class CountingOutcome:
    """What one batch did. Conflicting events are returned for the dead-letter topic, and so
    are those beyond a limit, with the reason."""

    applied: int = 0
    duplicates: int = 0
    too_old: int = 0  # counted in the totals, too old for a daily bucket
    conflicts: list[CallEvent] = field(default_factory=list)
    over_limit: list[tuple[CallEvent, str]] = field(default_factory=list)
    # events of campaigns whose idempotence state is released or deleted, with the reason
    released: list[tuple[CallEvent, str]] = field(default_factory=list)
    # (topic, partition) -> the offset to count again from: Redis lost writes (see count)
    lost_since: dict[tuple[str, int], int] = field(default_factory=dict)


class EventCounter:
    """Applies validated events to the Redis counters; safe to call again with the same events."""

    def __init__(self, redis: AnyRedis, context: CountingContext) -> None:
        self.redis = redis
        self.context = context
        # The context's fields, each an attribute of its own: counting reads them per batch.
        self.layout: KeyLayout = context.layout
        self.zone_of = context.zone_of  # the VDN's time zone (Settings.time_zone_of)
        self.retention_days = context.retention_days
        self.clock: Clock = context.clock
        self.limits = context.limits
        # Each counting call that changes a campaign's counters records them in its change
        # stream, capped at this many (0: none, and push has nothing to send).
        self.changes_kept = context.changes_kept
        # A failed call with one of these failCodes was abandoned (ISALES_ABANDON_FAIL_CODES).
        self.abandon_fail_codes = context.abandon_fail_codes
        self.notifications = 1 if context.notifications else 0
        # VDN -> its abandon limit as the script compares it, and as configured (per batch
        # otherwise: a Fraction each).
        self._limits: dict[int, tuple[str, str]] = {}
        # Campaigns this process listed in their VDN's index and put on the lifecycle's
        # schedule: only a campaign not among them costs those commands (a new one is rare),
        # and under a campaign limit an admission round trip.
        self._known: set[tuple[int, str]] = set()
        # The offset this process last stored per partition: finding less in Redis means Redis
        # lost writes (a crash within its fsync second, a restore) and the counts with them.
        self._last_stored: dict[tuple[str, int], int] = {}

    async def find_lost_offsets(self) -> dict[tuple[str, int], int]:
        """Partitions whose stored offset went back (Redis lost writes): where to read again.

        Reads only: writing the offsets back without the counts would claim counts that are
        not there. Run on a timer, so that a loss is healed even when no event follows it.
        """
        # A copy: a rebalance may forget partitions while the reads are on their way.
        last_stored = dict(self._last_stored)
        sources = list(last_stored)
        if not sources:
            return {}
        stored = await run_pipeline(
            self.redis,
            [],
            lambda pipe: [
                pipe.hget(self.layout.counted_offsets(topic), str(partition))
                for topic, partition in sources
            ],
        )
        return {
            source: 0 if before is None else int(before) + 1
            for source, before in zip(sources, stored, strict=True)
            if before is None or int(before) < last_stored[source]
        }

    def forget_offsets(self, partitions: Iterable[tuple[str, int]]) -> None:
        """After a rebalance the stored offsets of these partitions are someone else's news."""
        for partition in partitions:
            self._last_stored.pop(partition, None)

    async def count(
        self,
        events: Sequence[CallEvent],
        counted_offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> CountingOutcome:
        """Count ``events``; then record ``counted_offsets`` ((topic, partition) -> offset).

        The offsets are written after the counting scripts, in a second round trip sent only
        once every command of the first succeeded: a pipeline is not a transaction, and a
        script refused in its middle (Redis full under ``noeviction``, a node failing) must not
        leave a resume point past events it did not count. Redis runs a connection's commands
        in order and its append-only file keeps them in order, so an offset that survives a
        Redis crash never stands for counts that did not. The first round trip reads the
        offsets as they were: lower than what this process stored last means Redis lost
        writes, and ``lost_since`` says where to read the partition again from.
        """
        outcome = CountingOutcome()
        if not events and not counted_offsets:
            return outcome
        by_campaign: dict[tuple[int, str], list[CallEvent]] = {}
        for event in events:
            by_campaign.setdefault((event.vdn_id, event.campaign_id), []).append(event)
        if len(self._known) > KNOWN_CAMPAIGNS_REMEMBERED:
            self._known.clear()
        new = [campaign for campaign in by_campaign if campaign not in self._known]
        if self.limits.campaigns_per_vdn and new:
            await self._set_aside_unlisted(new, by_campaign, outcome)
            new = [campaign for campaign in new if campaign in by_campaign]
        scripts = self._scripts(by_campaign, outcome)
        # A batch's fixed cost is its commands, whatever its size: two per topic for the
        # offsets, and one per VDN for the index only when it has a new campaign.
        by_topic: dict[str, dict[int, int]] = {}
        for (topic, partition), offset in (counted_offsets or {}).items():
            by_topic.setdefault(topic, {})[partition] = offset
        # Listed by the admission above under a campaign limit, else by the counting pipeline.
        unlisted = {} if self.limits.campaigns_per_vdn else _by_vdn(new)
        closing = [c for c, of_it in by_campaign.items() if any(e.kind is CLOSED for e in of_it)]

        groups = ReplyGroups()
        replies = groups.split(
            await run_pipeline(
                self.redis,
                [COUNT_EVENTS],
                lambda pipe: self._queue(
                    groups.on(pipe), by_topic, unlisted, scripts, new, closing
                ),
            )
        )
        verdicts = [text_of(letters) for letters in replies["verdicts"]]
        announced = [
            campaign
            for campaign, letters in zip(by_campaign, verdicts, strict=True)
            if letters.endswith(ANNOUNCE)
        ]
        if announced:
            await self._announce(announced)
        if by_topic or announced:
            await run_pipeline(
                self.redis,
                [STORE_HIGHER_OFFSETS],
                lambda pipe: self._queue_offsets(pipe, by_topic, announced),
            )
        for (topic, partitions), found in zip(
            by_topic.items(), replies["offsets before"], strict=True
        ):
            self._note_stored_offsets(topic, partitions, found, outcome)
        ended = [
            campaign
            for campaign, letters in zip(by_campaign, verdicts, strict=True)
            if _tally(
                by_campaign[campaign],
                letters[: len(by_campaign[campaign])],
                outcome,
                self.limits,
            )
            in _RELEASED_REASONS
        ]
        self._known.update(new)
        await self._unlist_ended([campaign for campaign in ended if campaign in new])
        return outcome

    async def _unlist_ended(self, campaigns: list[tuple[int, str]]) -> None:
        """Take released or deleted campaigns that this batch listed again off the live index.

        A late event of such a campaign lists it (the index is listed ahead of the counts, in
        another Redis Cluster slot) before the counting script finds it released or deleted.
        Rare: only a process that had not listed the campaign itself gets here. A released
        campaign stays in the VDN's released index, where the sweeper filed it.
        """
        if not campaigns:
            return
        await run_pipeline(
            self.redis,
            [],
            lambda pipe: [
                pipe.srem(self.layout.vdn_campaigns(vdn_id), campaign_id)
                for vdn_id, campaign_id in campaigns
            ],
        )

    async def _set_aside_unlisted(
        self,
        campaigns: list[tuple[int, str]],
        by_campaign: dict[tuple[int, str], list[CallEvent]],
        outcome: CountingOutcome,
    ) -> None:
        """List the batch's new campaigns in their VDNs' indexes while they fit; the events of
        those that do not leave ``by_campaign`` for ``outcome.over_limit``."""
        new = _by_vdn(campaigns)
        limit = self.limits.campaigns_per_vdn
        verdicts = await run_pipeline(
            self.redis,
            [ADMIT_CAMPAIGNS],
            lambda pipe: self._queue_admissions(pipe, new, limit),
        )
        for (vdn_id, campaign_ids), listed in zip(new.items(), verdicts, strict=True):
            for campaign_id, verdict in zip(campaign_ids, listed, strict=True):
                if int(verdict):
                    continue
                reason = (
                    f"VDN {vdn_id} has {limit} campaigns already: campaign {campaign_id!r} is "
                    "beyond ISALES_MAX_CAMPAIGNS_PER_VDN"
                )
                for event in by_campaign.pop((vdn_id, campaign_id)):
                    outcome.over_limit.append((event, reason))

    def _queue_admissions(self, pipe: Any, new: dict[int, list[str]], limit: int) -> None:
        for vdn_id, campaign_ids in new.items():
            ADMIT_CAMPAIGNS.queue(pipe, [self.layout.vdn_campaigns(vdn_id)], [limit, *campaign_ids])

    def _queue(
        self,
        pipe: ReplyGroups,
        by_topic: dict[str, dict[int, int]],
        unlisted: dict[int, list[str]],
        scripts: list[tuple[list[str], CountingArguments]],
        new: list[tuple[int, str]],
        closing: list[tuple[int, str]],
    ) -> None:
        """A batch's commands but the offsets' (``_queue_offsets``): the offsets as they were,
        the index, the counting, the lifecycle's schedule."""
        with pipe.group("offsets before") as commands:
            for topic, partitions in by_topic.items():
                commands.hmget(self.layout.counted_offsets(topic), [str(p) for p in partitions])
        # The index comes first: a campaign is listed before its counters can be read.
        with pipe.group("listed") as commands:
            for vdn_id, campaign_ids in unlisted.items():
                commands.sadd(self.layout.vdn_campaigns(vdn_id), *campaign_ids)
        with pipe.group("verdicts") as commands:
            for keys, arguments in scripts:
                COUNT_EVENTS.queue(commands, keys, arguments)
        # The lifecycle sweeper is told to look (engine/lifecycle.py): at a new campaign to
        # schedule its idle end, at once at one that closed. It owns the rules and the dates;
        # counting only names the campaigns, before the offsets that would skip this batch.
        now = self.clock()
        schedule = self.layout.lifecycle_schedule()
        with pipe.group("scheduled") as commands:
            if new:
                members = {schedule_member(*campaign): now for campaign in new}
                commands.zadd(schedule, members, nx=True)
            if closing:
                members = {schedule_member(*campaign): now for campaign in closing}
                commands.zadd(schedule, members, lt=True)

    async def _announce(self, campaigns: list[tuple[int, str]]) -> None:
        """Put campaigns whose outbox has new entries in the due set, and wake the notifiers.

        Its own round trip, before the one that clears the campaigns' mark (``_queue_offsets``):
        a worker that dies before the due set has them leaves the mark, and the next counting
        call of the campaign, a replay of this batch included, answers ANNOUNCE again.
        """
        due, wake = self.layout.outbox_due(), self.layout.outbox_wake_channel()
        since_ms = int(self.clock() * 1000)
        members = [schedule_member(*campaign) for campaign in campaigns]

        def queue(pipe: Any) -> None:
            pipe.zadd(due, dict.fromkeys(members, since_ms), nx=True)
            for member in members:
                pipe.publish(wake, member)

        await run_pipeline(self.redis, [], queue)

    def _queue_offsets(
        self,
        pipe: Any,
        by_topic: dict[str, dict[int, int]],
        announced: Sequence[tuple[int, str]] = (),
    ) -> None:
        """The resume points of a batch whose counts are in, after the marks of campaigns now
        in the due set are cleared. Only a higher offset replaces a stored one: after a
        rebalance the old owner's last batch may come late."""
        for vdn_id, campaign_id in announced:
            pipe.hdel(
                self.layout.campaign_notified(vdn_id, campaign_id), NOTIFIED_FIELDS["unannounced"]
            )
        for topic, partitions in by_topic.items():
            pairs = [value for item in partitions.items() for value in item]
            STORE_HIGHER_OFFSETS.queue(pipe, [self.layout.counted_offsets(topic)], pairs)

    def _scripts(
        self, by_campaign: dict[tuple[int, str], list[CallEvent]], outcome: CountingOutcome
    ) -> list[tuple[list[str], CountingArguments]]:
        """One counting script call per campaign: its keys and arguments (engine/contract.py)."""
        # Per VDN, worked out once a batch: the oldest day still retained, today's label in its
        # zone (a change's day) and the minute of a UTC hour at which its hours start.
        of_vdn: dict[int, tuple[str, str, int]] = {}
        now = self.clock()
        minute_ms = minute_start_ms(now)
        today = int(now // DAY_SECONDS)  # the lifecycle's idle clock: UTC days of the worker
        decided_at = timestamp_of(now)
        scripts: list[tuple[list[str], CountingArguments]] = []
        for (vdn_id, campaign_id), campaign_events in by_campaign.items():
            zone = self.zone_of(vdn_id)
            if vdn_id not in of_vdn:
                today_in_zone = day_of(int(now * 1000), zone)
                of_vdn[vdn_id] = (
                    oldest_retained_day(zone, self.retention_days, self.clock).isoformat(),
                    today_in_zone.isoformat(),
                    hour_shift(today_in_zone, zone),
                )
            oldest, today_label, shift = of_vdn[vdn_id]
            fractions, limit_percent = self._limit_of(vdn_id)
            packed: list[EventArray] = []
            for event in campaign_events:
                if event.kind is CLOSED:  # a campaign's end moves no counter of any day
                    packed.append(packed_event(_KIND_CODES[CLOSED]))
                    continue
                day, expire_at, hour = self._day_of(event, zone, oldest)
                if not day:
                    outcome.too_old += 1
                packed.append(
                    packed_event(
                        _KIND_CODES[event.kind],
                        event.data_id,
                        event.call_id or "",
                        event.batch_id or "",
                        connected=event.connected,
                        final=event.final,
                        day=day,
                        expire_at=expire_at,
                        hour=hour,
                        fail_code=event.fail_code or "",
                        minute=event.occurred_at_ms // MINUTE_MS,
                    )
                )
            arguments = CountingArguments(
                campaign_base=self.layout.campaign_base(vdn_id, campaign_id),
                events=orjson.dumps(packed),
                minute_ms=minute_ms,
                max_batches=self.limits.batches_per_campaign,
                active_day=today,
                now=int(now),
                today=today_label,
                changes_kept=self.changes_kept,
                change_channel=self.layout.vdn_changes_channel(vdn_id),
                campaign_id=campaign_id,
                hour_shift=shift,
                abandon_fail_codes=self.abandon_fail_codes,
                notifications=self.notifications,
                vdn_id=vdn_id,
                decided_at=decided_at,
                abandon_fractions=fractions,
                abandon_limit_percent=limit_percent,
            )
            scripts.append(([self.layout.campaign_totals(vdn_id, campaign_id)], arguments))
        return scripts

    def _limit_of(self, vdn_id: int) -> tuple[str, str]:
        """The VDN's abandon limit for the script: its fractions (status_fractions) and its
        percent as configured."""
        known = self._limits.get(vdn_id)
        if known is None:
            percent = self.context.abandon_limit_of(vdn_id)
            limit = AbandonLimit(percent, self.context.abandon_warning_fraction)
            known = (status_fractions(limit), repr(float(percent)))
            self._limits[vdn_id] = known
        return known

    def _note_stored_offsets(
        self,
        topic: str,
        offsets: dict[int, int],
        before: Sequence[Any],
        outcome: CountingOutcome,
    ) -> None:
        """Remember the offsets stored; one found lower than this process stored lost writes."""
        for (partition, offset), found in zip(offsets.items(), before, strict=True):
            source = (topic, partition)
            stored_last = self._last_stored.get(source)
            if stored_last is not None and (found is None or int(found) < stored_last):
                outcome.lost_since[source] = 0 if found is None else int(found) + 1
            self._last_stored[source] = offset

    def _day_of(self, event: CallEvent, zone: tzinfo, oldest: str) -> tuple[str, int, int]:
        """The event's day label, when that day's keys expire, and its hour of the day; "" when
        the day is older than the retention (its keys are gone)."""
        day = day_of(event.occurred_at_ms, zone)
        label = day.isoformat()
        if label < oldest:
            return "", 0, 0
        return (
            label,
            day_expiry(day, zone, self.retention_days),
            hour_of_day(event.occurred_at_ms, day, zone),
        )


def schedule_member(vdn_id: int, campaign_id: str) -> str:
    """A campaign's member of the lifecycle schedule: "vdnId:campaignId"."""
    return f"{vdn_id}:{campaign_id}"


_RELEASED_REASONS = {
    RELEASED: "its idempotence state was released (the campaign ended): its counters are final",
    DELETED: "it was deleted: only its tombstone is left",
}


def _by_vdn(campaigns: Iterable[tuple[int, str]]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for vdn_id, campaign_id in campaigns:
        grouped.setdefault(vdn_id, []).append(campaign_id)
    return grouped


def _tally(
    events: list[CallEvent], verdicts: str, outcome: CountingOutcome, limits: CountingLimits
) -> str:
    """The script's verdict per event (engine/contract.py): applied, duplicate, conflict, a batch
    beyond the limit, a campaign released or deleted. Returns the first verdict (a released or
    deleted campaign's events all get the same)."""
    for event, verdict in zip(events, verdicts, strict=True):
        if verdict == APPLIED:
            outcome.applied += 1
        elif verdict == DUPLICATE:
            outcome.duplicates += 1
        elif verdict == CONFLICT:
            outcome.conflicts.append(event)
        elif verdict in _RELEASED_REASONS:
            reason = (
                f"campaign {event.campaign_id!r} of VDN {event.vdn_id} is not counted any more: "
                + _RELEASED_REASONS[verdict]
            )
            outcome.released.append((event, reason))
        else:
            reason = (
                f"campaign {event.campaign_id!r} of VDN {event.vdn_id} has "
                f"{limits.batches_per_campaign} batches already: batch {event.batch_id!r} is "
                "beyond ISALES_MAX_BATCHES_PER_CAMPAIGN"
            )
            outcome.over_limit.append((event, reason))
    return verdicts[:1]
