"""Reading the statistics back: the body of the iSales statistics interface, ``{"countDetail": …}``.

Shared by the API and the tests. Campaigns are read by one Lua script, atomically: on one Redis
a whole VDN in one call, on a Redis Cluster one call per campaign (sent together). An event only
ever touches one campaign, so a response never holds part of an event's effects.

The body is written here as JSON bytes, straight from the packed rows the engine keeps next to
its counter hashes (engine/count_events/): a whole VDN is 1,200 scopes of eleven counters,
and going through Python dicts and integers cost more than Redis took to read them
(docs/benchmarks.md, section "Statistics API"; docs/adr/0003-packed-rows.md).
``read_count_detail`` parses the same bytes back for callers that want Python values, so the API
and the tests see one and the same output.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Any

import orjson

from isales_stats.core.keys import DAILY_COUNTERS, RESPONSE_COUNTERS, TOTAL_COUNTERS
from isales_stats.engine.context import CountingContext
from isales_stats.engine.reads import (
    PipelinedRead,
    campaigns_script_read,
    live_campaigns_read,
    run_read,
)
from isales_stats.engine.redis_connection import AnyRedis, text_of
from isales_stats.engine.scripts import load_script

READ_STATISTICS = load_script("read_statistics.lua")

Counters = dict[str, Any]

# Rows as engine/count_events/ packs them: "5,2,…", integers as HINCRBY writes them. Checked by
# what survives deleting digits and commas (nothing may), then by orjson's number grammar (no
# empty field, no leading zero) and the count: ten times cheaper than a regular expression over
# the same bytes, which cost a tenth of a whole-VDN request.
_DIGITS_AND_COMMA = b"0123456789,"
_NO_EVENT_THAT_DAY = b",".join([b"0"] * len(DAILY_COUNTERS))
# calledCount and finishCount repeat these two (RESPONSE_COUNTERS).
_DAILY_CALLED = DAILY_COUNTERS.index("dailyCalledCount")
_TOTAL_FINISHED = TOTAL_COUNTERS.index("totalFinishCount")
# The JSON members of one scope's counters, to be filled with its packed values in order.
_COUNTER_MEMBERS = ",".join(f'"{name}":%s' for name in RESPONSE_COUNTERS).encode()


class CorruptCounters(ValueError):
    """A stored counter is not a non-negative integer: something other than the engine wrote it."""


class StatisticsReader:
    def __init__(self, redis: AnyRedis, context: CountingContext) -> None:
        self.redis = redis
        self.layout = context.layout

    async def read_body(
        self,
        vdn_id: int,
        day: date,
        campaign_id: str | None = None,
        batch_id: str | None = None,
    ) -> bytes:
        """The response body, JSON: a VDN (every campaign) or one campaign (and one batch)."""
        return await run_read(self.redis, self.body_read(vdn_id, day, campaign_id, batch_id))

    def body_read(
        self,
        vdn_id: int,
        day: date,
        campaign_id: str | None = None,
        batch_id: str | None = None,
    ) -> PipelinedRead[bytes]:
        """``read_body`` as a ``PipelinedRead`` (engine/reads.py): one campaign is read in its
        first round trip, the only one; a whole VDN's first round trip lists its campaigns, and
        they are read in a second, so that a request refused with the first (the API's
        admission) reads nothing more."""
        if campaign_id is None:
            listed = live_campaigns_read(self.layout, vdn_id)

            async def read_listed(replies: list[Any]) -> bytes:
                campaign_ids = await listed.finish(replies)
                if not campaign_ids:
                    return b'{"countDetail":[]}'
                return await run_read(self.redis, self.campaigns_read(vdn_id, day, campaign_ids))

            return PipelinedRead(listed.queue, read_listed)
        return self.campaigns_read(vdn_id, day, [campaign_id], batch_id)

    def campaigns_read(
        self, vdn_id: int, day: date, campaign_ids: list[str], batch_id: str | None = None
    ) -> PipelinedRead[bytes]:
        """The countDetail of ``campaign_ids`` (sorted), in one round trip: the body of a
        whole VDN, or of a part of it (the exports read a VDN this way, a part at a time)."""

        async def body(replies: list[Any]) -> bytes:
            entries = [
                _campaign_json(campaign, reply)
                for campaign, reply in zip(campaign_ids, replies, strict=True)
                if reply is not None
            ]
            return b'{"countDetail":[' + b",".join(entries) + b"]}"

        rows = [self.layout.campaign_rows(vdn_id, campaign) for campaign in campaign_ids]
        arguments = [day.isoformat(), batch_id or ""]
        return campaigns_script_read(self.redis, READ_STATISTICS, rows, arguments, body)

    async def read_count_detail(
        self,
        vdn_id: int,
        day: date,
        campaign_id: str | None = None,
        batch_id: str | None = None,
    ) -> list[Counters]:
        """``countDetail`` as Python values: the body of ``read_body``, parsed."""
        body = await self.read_body(vdn_id, day, campaign_id, batch_id)
        detail: list[Counters] = orjson.loads(body)["countDetail"]
        return detail


def _campaign_json(campaign_id: str, reply: list[list[bytes]]) -> bytes:
    """One countDetail entry: the campaign's counters, then its batches ordered by batchId.

    One %-format per campaign fills a template with every id and counter of it: per-scope
    formatting was most of the Python time of a whole-VDN read (docs/benchmarks.md).
    """
    totals_flat, daily_flat = reply
    totals = dict(zip(totals_flat[0::2], totals_flat[1::2], strict=True))
    daily = dict(zip(daily_flat[0::2], daily_flat[1::2], strict=True))
    check_rows(campaign_id, totals, daily)
    # Byte order of UTF-8 is code point order: the same order as sorting the decoded ids.
    batches = sorted(scope for scope in totals if scope)
    values = [orjson.dumps(campaign_id)]
    for scope in (b"", *batches):
        if scope:
            values.append(orjson.dumps(text_of(scope)))
        total = totals[scope].split(b",")
        day = daily.get(scope, _NO_EVENT_THAT_DAY).split(b",")
        values += total
        values += day
        values += (day[_DAILY_CALLED], total[_TOTAL_FINISHED])  # calledCount, finishCount
    return _campaign_template(len(batches)) % tuple(values)


def check_rows(campaign_id: str, totals: dict[bytes, bytes], daily: dict[bytes, bytes]) -> None:
    """Refuse rows the engine cannot have written (see _DIGITS_AND_COMMA)."""
    joined = b",".join([*totals.values(), *daily.values()])
    expected = len(TOTAL_COUNTERS) * len(totals) + len(DAILY_COUNTERS) * len(daily)
    if b"" in totals and not joined.translate(None, _DIGITS_AND_COMMA):
        try:
            if len(orjson.loads(b"[" + joined + b"]")) == expected:
                return
        except orjson.JSONDecodeError:
            pass
    raise CorruptCounters(
        f"campaign {campaign_id!r}: stored rows are not {len(TOTAL_COUNTERS)} totals and "
        f"{len(DAILY_COUNTERS)} daily integers ≥ 0 per scope: {totals!r:.200} {daily!r:.200}"
    )


@lru_cache(maxsize=256)
def _campaign_template(batches: int) -> bytes:
    """The JSON of a campaign with ``batches`` batches, %s where ids and counters go."""
    batch = b'{"batchId":%s,' + _COUNTER_MEMBERS + b"}"
    return (
        b'{"campaignId":%s,' + _COUNTER_MEMBERS
        + b',"batchDetail":[' + b",".join([batch] * batches) + b"]}"
    )  # fmt: skip
