"""Counting call events into Redis: the counting rules applied atomically, a campaign at a time.

The rules themselves run inside Redis (``count_events.lua``), next to the state they need, so
that a counter change and the bookkeeping that makes it idempotent are one atomic step. This
module prepares the batches: it groups events by campaign (one script call each, one Redis
Cluster slot each), works out each event's day in its VDN's zone, and sends every call of a
batch in one pipelined round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from importlib.resources import files
from typing import Any

import orjson
from redis.asyncio import Redis

from engine.days import Clock, day_expiry, day_of, oldest_retained_day, system_clock
from engine.events import CallEvent, EventKind
from engine.keys import KeyLayout

COUNT_EVENTS_LUA = files("engine").joinpath("count_events.lua").read_text()

_KIND_CODES = {EventKind.DATA_ADDED: "a", EventKind.CALL_RESULT: "c", EventKind.DATA_REMOVED: "r"}


@dataclass
class CountingOutcome:
    """What one batch did. Conflicting events are returned for the dead-letter topic."""

    applied: int = 0
    duplicates: int = 0
    too_old: int = 0  # counted in the totals, too old for a daily bucket
    conflicts: list[CallEvent] = field(default_factory=list)


class EventCounter:
    """Applies validated events to the Redis counters; safe to call again with the same events."""

    def __init__(
        self,
        redis: Redis,
        layout: KeyLayout,
        zone_of: Any,  # Callable[[int], tzinfo]: the VDN's time zone (Settings.time_zone_of)
        retention_days: int,
        clock: Clock = system_clock,
    ) -> None:
        self.redis = redis
        self.layout = layout
        self.zone_of = zone_of
        self.retention_days = retention_days
        self.clock = clock
        self._count_events = redis.register_script(COUNT_EVENTS_LUA)

    async def count(self, events: Sequence[CallEvent]) -> CountingOutcome:
        outcome = CountingOutcome()
        if not events:
            return outcome
        by_campaign: dict[tuple[int, str], list[CallEvent]] = {}
        for event in events:
            by_campaign.setdefault((event.vdn_id, event.campaign_id), []).append(event)

        oldest: dict[int, str] = {}
        minute_ms = int(self.clock() // 60) * 60_000
        async with self.redis.pipeline(transaction=False) as pipe:
            for (vdn_id, campaign_id), campaign_events in by_campaign.items():
                zone = self.zone_of(vdn_id)
                if vdn_id not in oldest:
                    oldest[vdn_id] = oldest_retained_day(
                        zone, self.retention_days, self.clock
                    ).isoformat()
                packed = []
                for event in campaign_events:
                    day, expire_at = self._day_of(event, zone, oldest[vdn_id])
                    if not day:
                        outcome.too_old += 1
                    packed.append(
                        (
                            _KIND_CODES[event.kind],
                            event.data_id,
                            event.call_id or "",
                            event.batch_id or "",
                            1 if event.connected else 0,
                            1 if event.final else 0,
                            day,
                            expire_at,
                        )
                    )
                # The index comes first: a campaign is listed before its counters can be read.
                pipe.sadd(self.layout.vdn_campaigns(vdn_id), campaign_id)
                await self._count_events(
                    keys=[self.layout.campaign_totals(vdn_id, campaign_id)],
                    args=[
                        self.layout.campaign_base(vdn_id, campaign_id),
                        orjson.dumps(packed),
                        minute_ms,
                    ],
                    client=pipe,
                )
            replies = await pipe.execute()

        for campaign_events, verdicts in zip(by_campaign.values(), replies[1::2], strict=True):
            for event, verdict in zip(campaign_events, _text(verdicts), strict=True):
                if verdict == "A":
                    outcome.applied += 1
                elif verdict == "D":
                    outcome.duplicates += 1
                else:
                    outcome.conflicts.append(event)
        return outcome

    def _day_of(self, event: CallEvent, zone: tzinfo, oldest: str) -> tuple[str, int]:
        day = day_of(event.occurred_at_ms, zone)
        label = day.isoformat()
        if label < oldest:
            return "", 0
        return label, day_expiry(day, zone, self.retention_days)


def _text(reply: bytes | str) -> str:
    return reply.decode() if isinstance(reply, bytes) else reply
