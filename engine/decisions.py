"""Reading what the abandon rate and the pacing are decided from: each scope's totals and windows.

A scope is a campaign or one of its batches. Its totals come from the packed rows the
statistics read too (``{P}:{vdn:c}:rows``); its rolling windows from its window hash
(``KeyLayout.scope_window``, isales_stats/core/windows.py): today's day bucket, its life, the
minute of its latest call, and the sums of the windows m5, m15, m60, h24 and d30 as they stand
at the reader's clock. The counting script keeps each sum as of the buckets current when it last
counted a call of the scope; read_decisions.lua corrects them for the time passed since
(docs/adr/0008-rolling-windows.md, "Reading").

Campaigns are read as the statistics are (engine/statistics.py): one Lua script, atomically; on
one Redis a whole VDN in one call, on a Redis Cluster one call per campaign, sent together. The
arithmetic of the decisions themselves is isales_stats/core/decisions.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from functools import partial
from typing import Any

import orjson

from isales_stats.core.days import day_start
from isales_stats.core.decisions import PARTS, WIDTH, ScopeCounts
from isales_stats.core.keys import TOTAL_COUNTERS
from isales_stats.core.windows import WINDOWS, Now, day_of_number, hour_shift
from isales_stats.engine.context import CountingContext
from isales_stats.engine.reads import (
    PipelinedRead,
    campaigns_script_read,
    live_campaigns_read,
    run_read,
)
from isales_stats.engine.redis_connection import AnyRedis
from isales_stats.engine.scripts import load_script
from isales_stats.engine.statistics import CorruptCounters

READ_DECISIONS = load_script("read_decisions.lua")

# What read_decisions.lua answers per scope besides its latest call: its totals row, then its
# PARTS (today, life, each window), in that order.
_ROW = len(TOTAL_COUNTERS)
_PARTS = len(PARTS) * WIDTH
_PER_SCOPE = _ROW + _PARTS
_DIGITS_AND_COMMA = b"0123456789,"
_RECORDS, _CALLS, _CONNECTS, _FINISHED = (
    TOTAL_COUNTERS.index(name)
    for name in ("totalCount", "totalCalledCount", "totalCallSucc", "totalFinishCount")
)
# Built from a tuple without the Python-level __new__ of a named tuple: one per scope of a VDN.
_scope_counts = partial(tuple.__new__, ScopeCounts)


@dataclass(frozen=True, slots=True)
class CampaignCounts:
    """A campaign's counts, and its batches' by batchId, ascending."""

    campaign_id: str
    counts: ScopeCounts
    batches: tuple[tuple[str, ScopeCounts], ...]


@dataclass(frozen=True, slots=True)
class DecisionCounts:
    """What was read, and the moment (epoch ms) the windows were summed at."""

    now_ms: int
    campaigns: tuple[CampaignCounts, ...]


class DecisionsReader:
    def __init__(self, redis: AnyRedis, context: CountingContext) -> None:
        self.redis = redis
        self.layout = context.layout
        self.zone_of = context.zone_of
        self.clock = context.clock

    async def counts(
        self, vdn_id: int, campaign_id: str | None = None, batch_id: str | None = None
    ) -> DecisionCounts:
        """A VDN's campaigns (or one campaign, and one batch) with their windows summed now."""
        return await run_read(self.redis, self.counts_read(vdn_id, campaign_id, batch_id))

    def counts_read(
        self, vdn_id: int, campaign_id: str | None = None, batch_id: str | None = None
    ) -> PipelinedRead[DecisionCounts]:
        """``counts`` as a ``PipelinedRead`` (engine/reads.py): one campaign is read in its
        first round trip; a whole VDN's first round trip lists its campaigns, read in a second
        (as StatisticsReader.body_read). An unknown campaign, or batch, is left out."""
        if campaign_id is None:
            listed = live_campaigns_read(self.layout, vdn_id)

            async def read_listed(replies: list[Any]) -> DecisionCounts:
                campaign_ids = await listed.finish(replies)
                if not campaign_ids:
                    return DecisionCounts(self._now_ms(), ())
                return await run_read(self.redis, self._campaigns_read(vdn_id, campaign_ids))

            return PipelinedRead(listed.queue, read_listed)
        return self._campaigns_read(vdn_id, [campaign_id], batch_id)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _campaigns_read(
        self, vdn_id: int, campaign_ids: list[str], batch_id: str | None = None
    ) -> PipelinedRead[DecisionCounts]:
        now_ms = self._now_ms()
        zone = self.zone_of(vdn_id)
        now = Now.at(now_ms, zone)
        arguments = [batch_id or "", f"{now.minute},{now.hour},{now.day}"]
        arguments.append(",".join(str(minute) for minute in _first_minutes(now, zone)))

        async def counts(replies: list[Any]) -> DecisionCounts:
            return DecisionCounts(
                now_ms,
                tuple(
                    _campaign_counts(campaign, reply)
                    for campaign, reply in zip(campaign_ids, replies, strict=True)
                    if reply
                ),
            )

        rows = [self.layout.campaign_rows(vdn_id, campaign) for campaign in campaign_ids]
        return campaigns_script_read(self.redis, READ_DECISIONS, rows, arguments, counts)


def _first_minutes(now: Now, zone: tzinfo) -> list[int]:
    """The first epoch minute of each window's first bucket at ``now`` (WINDOWS' order): a
    scope whose latest call is older has nothing in that window."""
    shift = hour_shift(day_of_number(now.day), zone)  # as Now.at numbered the hour
    firsts = []
    for name, (kind, _) in WINDOWS.items():
        first = now.first_bucket(name)
        if kind == "minute":
            firsts.append(first)
        elif kind == "hour":
            firsts.append(first * 60 + shift)
        else:
            firsts.append(day_start(day_of_number(first), zone) // 60)
    return firsts


def _campaign_counts(campaign_id: str, reply: list[bytes]) -> CampaignCounts:
    """A campaign's scopes from read_decisions.lua's three strings: its scopes' ids, their
    numbers (each scope's totals row then its PARTS) and their latest calls."""
    packed_ids, packed_numbers, packed_lasts = reply
    ids = packed_ids.split(b"\n")
    numbers = _numbers(campaign_id, packed_numbers.replace(b";", b","), len(ids) * _PER_SCOPE)
    lasts = _lasts(campaign_id, packed_lasts, len(ids))
    # Each of a scope's figures at its place in every scope's numbers: taken as slices, the
    # scopes are built without a Python step per figure.
    scopes = map(
        _scope_counts,
        zip(
            numbers[_RECORDS::_PER_SCOPE],
            numbers[_CALLS::_PER_SCOPE],
            numbers[_CONNECTS::_PER_SCOPE],
            numbers[_FINISHED::_PER_SCOPE],
            [numbers[at : at + _PARTS] for at in range(_ROW, len(numbers), _PER_SCOPE)],
            lasts,
            strict=True,
        ),
    )
    # The campaign ("") first, then its batches by batchId: byte order of UTF-8 is code point
    # order, the same order as sorting the decoded ids (which are distinct: hash fields).
    (first, campaign), *batches = sorted(zip(ids, scopes, strict=True))
    if first != b"":
        raise CorruptCounters(f"campaign {campaign_id!r}: its rows hold batches but no campaign")
    return CampaignCounts(
        campaign_id, campaign, tuple((batch.decode(), counts) for batch, counts in batches)
    )


def _numbers(campaign_id: str, joined: bytes, count: int) -> list[int]:
    """The ``count`` integers of comma-separated numbers ("4,0,2,1,..."); refused when anything
    but the engine wrote them (no sign, no empty field, no leading zero)."""
    if not joined.translate(None, _DIGITS_AND_COMMA):
        try:
            numbers: list[int] = orjson.loads(b"[" + joined + b"]")
            if len(numbers) == count:
                return numbers
        except orjson.JSONDecodeError:
            pass
    raise CorruptCounters(
        f"campaign {campaign_id!r}: a stored row or window is not integers ≥ 0 of the expected "
        f"count: {joined!r:.200}"
    )


def _lasts(campaign_id: str, packed: bytes, count: int) -> list[int | None]:
    """The ``count`` latest-call minutes of comma-separated ones, None where empty (no call)."""
    lasts = packed.split(b",")
    if len(lasts) != count or packed.translate(None, _DIGITS_AND_COMMA):
        raise CorruptCounters(f"campaign {campaign_id!r}: its latest calls are {packed!r:.200}")
    return [int(last) if last else None for last in lasts]
