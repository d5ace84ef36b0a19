"""A campaign's changes as counting records them, read back for push.

engine/count_events/ appends the campaign's counters to its change stream (a capped Redis Stream)
in the same atomic step as it changes them, and tells the VDN's Pub/Sub channel which campaign
changed. A change's id is its stream id, "ms-seq" in Redis' clock: increasing per campaign, and
across campaigns ordered by time to within the clocks' agreement (api/push/ explains how a
subscriber of a whole VDN resumes despite that).

Shared by the API's push (api/push/) and the tests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from isales_stats.core.interface import ChangeId, format_change_id, parse_change_id
from isales_stats.core.keys import CHANGE_FIELDS, DAILY_COUNTERS, TOTAL_COUNTERS
from isales_stats.engine.context import CountingContext
from isales_stats.engine.redis_connection import AnyRedis, run_pipeline, text_of
from isales_stats.engine.scripts import load_script

log = logging.getLogger(__name__)

READ_CHANGES = load_script("read_changes.lua")

BEFORE_ANY_CHANGE: ChangeId = (0, 0)  # before every change

# read_changes.lua's answers
_CHANGES, _LATEST, _FROM_ROWS, _UNKNOWN = 0, 1, 2, 3
_DAY, _TOTALS, _DAILY = CHANGE_FIELDS


@dataclass(frozen=True)
class CampaignChange:
    """A campaign's counters after one change: the eleven of a countDetail entry (without
    batches), the day whose daily counters they are, and the change's id.

    ``snapshot`` marks counters that stand for every change up to them, some of which were not
    sent (a new subscriber, or one resuming from a point no longer kept). ``change_id`` is
    (0, 0) for a snapshot read from the rows of a campaign with no change recorded.
    """

    campaign_id: str
    change_id: ChangeId
    stat_date: str
    totals: tuple[int, ...]
    daily: tuple[int, ...]
    snapshot: bool = False

    @property
    def counters(self) -> dict[str, int]:
        """The eleven counters by name, as the statistics interface spells them."""
        named = dict(zip(TOTAL_COUNTERS, self.totals, strict=True))
        named.update(zip(DAILY_COUNTERS, self.daily, strict=True))
        named["calledCount"] = named["dailyCalledCount"]
        named["finishCount"] = named["totalFinishCount"]
        return named

    def to_json(self) -> bytes:
        """The event's data: campaignId, changeId, statDate, the counters and snapshot."""
        return orjson.dumps(
            {
                "campaignId": self.campaign_id,
                "changeId": format_change_id(self.change_id),
                "statDate": self.stat_date,
                **self.counters,
                "snapshot": self.snapshot,
            }
        )


def _row(packed: bytes, size: int) -> tuple[int, ...]:
    values = tuple(int(value) for value in packed.split(b","))
    if len(values) != size:
        raise ValueError(f"a packed row of {size} counters holds {len(values)}")
    return values


def change_from_entry(campaign_id: str, entry: Sequence[Any], snapshot: bool) -> CampaignChange:
    """A change from an XRANGE entry: [id, [field, value, ...]] as a script gets it, or
    (id, {field: value}) as redis-py's ``xrange`` parses it."""
    entry_id, flat = entry
    fields = flat if isinstance(flat, dict) else dict(zip(flat[0::2], flat[1::2], strict=True))
    return CampaignChange(
        campaign_id,
        parse_change_id(text_of(entry_id)),
        text_of(fields[_DAY.encode()]),
        _row(fields[_TOTALS.encode()], len(TOTAL_COUNTERS)),
        _row(fields[_DAILY.encode()], len(DAILY_COUNTERS)),
        snapshot,
    )


@dataclass(frozen=True)
class ChangeRead:
    """What one campaign's read found: its changes after the point asked, oldest first, or a
    single snapshot; empty for a campaign without counters."""

    campaign_id: str
    changes: list[CampaignChange]


class ChangeReader:
    """Reads the change streams of a VDN's campaigns (one script call per campaign, sent in one
    round trip)."""

    def __init__(self, redis: AnyRedis, context: CountingContext, most_changes: int = 1000) -> None:
        self.redis = redis
        self.layout = context.layout
        # Past this many changes after a point, a campaign answers a snapshot: a subscriber
        # that far behind needs the latest counters, not the way to them.
        self.most_changes = most_changes

    async def live_campaigns(self, vdn_id: int) -> list[str]:
        """The VDN's live campaigns (its index), sorted."""
        members = await self.redis.smembers(self.layout.vdn_campaigns(vdn_id))
        return sorted(text_of(member) for member in members)

    async def read(
        self,
        vdn_id: int,
        points: Sequence[tuple[str, ChangeId | None]],
        today: str,
        latest_anyway: bool = False,
    ) -> list[ChangeRead]:
        """For each (campaignId, point): the changes after the point, or a snapshot when the
        point is None, or when the changes after it are no longer all kept; with
        ``latest_anyway``, a snapshot of the latest when nothing came after the point."""
        if not points:
            return []

        def queue(pipe: Any) -> None:
            for campaign_id, point in points:
                READ_CHANGES.queue(
                    pipe,
                    [self.layout.campaign_changes(vdn_id, campaign_id)],
                    [
                        self.layout.campaign_base(vdn_id, campaign_id),
                        "" if point is None else format_change_id(point),
                        self.most_changes,
                        today,
                        "1" if latest_anyway else "0",
                    ],
                )

        replies = await run_pipeline(self.redis, [READ_CHANGES], queue)
        return [
            ChangeRead(campaign_id, _changes(campaign_id, reply, today))
            for (campaign_id, _), reply in zip(points, replies, strict=True)
        ]


def _changes(campaign_id: str, reply: list[Any], today: str) -> list[CampaignChange]:
    kind = int(reply[0])
    if kind == _CHANGES:
        return [
            change
            for entry in reply[1]
            if (change := _parsed(campaign_id, entry, snapshot=False)) is not None
        ]
    if kind == _LATEST:
        latest = _parsed(campaign_id, reply[1], snapshot=True)
        return [] if latest is None else [latest]
    if kind == _FROM_ROWS:
        return [
            CampaignChange(
                campaign_id,
                BEFORE_ANY_CHANGE,
                today,
                _row(reply[1], len(TOTAL_COUNTERS)),
                _row(reply[2], len(DAILY_COUNTERS)),
                snapshot=True,
            )
        ]
    return []


def _parsed(campaign_id: str, entry: Sequence[Any], snapshot: bool) -> CampaignChange | None:
    """The change of an entry, or None, logged, for one this version cannot read (another
    version's fields): one unreadable entry must not stop every subscriber's changes."""
    try:
        return change_from_entry(campaign_id, entry, snapshot)
    except (KeyError, ValueError, TypeError) as error:
        log.warning("campaign %r: change entry %r skipped: %s", campaign_id, entry, error)
        return None
