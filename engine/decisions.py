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
from typing import Any

import orjson
from redis.asyncio.cluster import RedisCluster

from isales_stats.core.days import day_start
from isales_stats.core.decisions import PARTS, WIDTH, ScopeCounts
from isales_stats.core.keys import TOTAL_COUNTERS
from isales_stats.core.windows import WINDOWS, Now, day_of_number, hour_shift
from isales_stats.engine.context import CountingContext
from isales_stats.engine.reads import PipelinedRead, run_read
from isales_stats.engine.redis_connection import AnyRedis, text_of
from isales_stats.engine.scripts import load_script
from isales_stats.engine.statistics import CorruptCounters

READ_DECISIONS = load_script("read_decisions.lua")

# A totals row's width; what read_decisions.lua answers per scope besides its latest call: the
# scope's PARTS (today, life, each window), in that order.
_ROW = len(TOTAL_COUNTERS)
_NUMBERS_PER_SCOPE = len(PARTS) * WIDTH
_DIGITS_AND_COMMA = b"0123456789,"
_RECORDS, _CALLS, _CONNECTS, _FINISHED = (
    TOTAL_COUNTERS.index(name)
    for name in ("totalCount", "totalCalledCount", "totalCallSucc", "totalFinishCount")
)


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

            async def read_listed(replies: list[Any]) -> DecisionCounts:
                (members,) = replies
                campaign_ids = sorted(text_of(member) for member in members)
                if not campaign_ids:
                    return DecisionCounts(self._now_ms(), ())
                return await run_read(self.redis, self._campaigns_read(vdn_id, campaign_ids))

            def list_campaigns(pipe: Any) -> None:
                pipe.smembers(self.layout.vdn_campaigns(vdn_id))

            return PipelinedRead(list_campaigns, read_listed)
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
        groups = (
            [[campaign] for campaign in campaign_ids]
            if isinstance(self.redis, RedisCluster)
            else [campaign_ids]
        )

        def queue(pipe: Any) -> None:
            for group in groups:
                READ_DECISIONS.queue(
                    pipe,
                    [self.layout.campaign_rows(vdn_id, campaign) for campaign in group],
                    arguments,
                )

        async def counts(replies: list[Any]) -> DecisionCounts:
            read = [reply for group in replies for reply in group]
            return DecisionCounts(
                now_ms,
                tuple(
                    _campaign_counts(campaign, reply)
                    for campaign, reply in zip(campaign_ids, read, strict=True)
                    if reply
                ),
            )

        return PipelinedRead(queue, counts, (READ_DECISIONS,))


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


def _campaign_counts(campaign_id: str, reply: list[list[bytes]]) -> CampaignCounts:
    totals_flat, windows_flat = reply
    totals = dict(zip(totals_flat[0::2], totals_flat[1::2], strict=True))
    windows = dict(zip(windows_flat[0::2], windows_flat[1::2], strict=True))
    if b"" not in totals:
        raise CorruptCounters(f"campaign {campaign_id!r}: its rows hold batches but no campaign")
    # Byte order of UTF-8 is code point order: the same order as sorting the decoded ids.
    scopes = [b"", *sorted(scope for scope in totals if scope)]
    rows = _numbers(campaign_id, [totals[scope] for scope in scopes], _ROW)
    parts = [windows[scope].rpartition(b";") for scope in scopes]
    sums = _numbers(
        campaign_id, [head.replace(b";", b",") for head, _, _ in parts], _NUMBERS_PER_SCOPE
    )
    counted = []
    for index, (_, _, last) in enumerate(parts):
        row, first = index * _ROW, index * _NUMBERS_PER_SCOPE
        counted.append(
            ScopeCounts(
                rows[row + _RECORDS],
                rows[row + _CALLS],
                rows[row + _CONNECTS],
                rows[row + _FINISHED],
                sums[first : first + _NUMBERS_PER_SCOPE],
                _last_call(campaign_id, last),
            )
        )
    return CampaignCounts(
        campaign_id,
        counted[0],
        tuple(
            (text_of(scope), scope_counts)
            for scope, scope_counts in zip(scopes[1:], counted[1:], strict=True)
        ),
    )


def _numbers(campaign_id: str, packed: list[bytes], per_item: int) -> list[int]:
    """The integers of packed rows ("4,0,2,1"), each row ``per_item`` of them; refused when
    anything but the engine wrote them (no sign, no empty field, no leading zero)."""
    joined = b",".join(packed)
    if not joined.translate(None, _DIGITS_AND_COMMA):
        try:
            numbers: list[int] = orjson.loads(b"[" + joined + b"]")
            if len(numbers) == per_item * len(packed):
                return numbers
        except orjson.JSONDecodeError:
            pass
    raise CorruptCounters(
        f"campaign {campaign_id!r}: a stored row or window is not {per_item} integers ≥ 0: "
        f"{joined!r:.200}"
    )


def _last_call(campaign_id: str, text: bytes) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise CorruptCounters(f"campaign {campaign_id!r}: a window's last call is {text!r:.40}")
    return int(text)
