"""Reading the statistics back: the body of the iSales statistics interface, ``{"countDetail": …}``.

Shared by the API and the tests. Campaigns are read by one Lua script, atomically: on one Redis
a whole VDN in one call, on a Redis Cluster one call per campaign (sent together). An event only
ever touches one campaign, so a response never holds part of an event's effects.

The body is written here as JSON bytes, straight from the script's packed counters: a whole VDN
is 1,200 scopes of eleven counters, and going through Python dicts and integers cost more than
Redis took to read them (docs/benchmarks.md). ``read_count_detail`` parses the same bytes back
for callers that want Python values, so the API and the tests see one and the same output.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from importlib.resources import files
from typing import Any

import orjson
from redis.asyncio.cluster import RedisCluster

from engine.keys import RESPONSE_COUNTERS, KeyLayout
from engine.redis_connection import AnyRedis, LuaScript, run_pipeline

READ_STATISTICS = LuaScript(files("engine").joinpath("read_statistics.lua").read_text())

Counters = dict[str, Any]

# A scope's counters as read_statistics.lua packs them: "3,1,…", eleven integers as HINCRBY
# writes them. Checked by what survives deleting digits and commas (nothing may), then by
# orjson's number grammar (no empty field, no leading zero) and the count: ten times cheaper
# than a regular expression over the same bytes, which cost a tenth of a whole-VDN request.
_DIGITS_AND_COMMA = b"0123456789,"
# The JSON members of one scope's counters, to be filled with its packed values in order.
_COUNTER_MEMBERS = ",".join(f'"{name}":%s' for name in RESPONSE_COUNTERS).encode()


class CorruptCounters(ValueError):
    """A stored counter is not a non-negative integer: something other than the engine wrote it."""


class StatisticsReader:
    def __init__(self, redis: AnyRedis, layout: KeyLayout) -> None:
        self.redis = redis
        self.layout = layout

    async def read_body(
        self,
        vdn_id: int,
        day: date,
        campaign_id: str | None = None,
        batch_id: str | None = None,
    ) -> bytes:
        """The response body, JSON: a VDN (every campaign) or one campaign (and one batch)."""
        if campaign_id is None:
            members = await self.redis.smembers(self.layout.vdn_campaigns(vdn_id))
            campaign_ids = sorted(_text(member) for member in members)
        else:
            campaign_ids = [campaign_id]
        if not campaign_ids:
            return b'{"countDetail":[]}'
        label = day.isoformat()

        # One script call reads every campaign on a single Redis; a cluster needs one per
        # campaign (each names its own slot), still sent in one go.
        groups = (
            [[campaign] for campaign in campaign_ids]
            if isinstance(self.redis, RedisCluster)
            else [campaign_ids]
        )

        def queue(pipe: Any) -> None:
            for group in groups:
                READ_STATISTICS.queue(
                    pipe,
                    [self.layout.campaign_totals(vdn_id, campaign) for campaign in group],
                    [label, batch_id or ""],
                )

        replies = [reply for group in await run_pipeline(self.redis, [READ_STATISTICS], queue)
                   for reply in group]  # fmt: skip
        entries = [
            _campaign_json(campaign, reply)
            for campaign, reply in zip(campaign_ids, replies, strict=True)
            if reply is not None
        ]
        return b'{"countDetail":[' + b",".join(entries) + b"]}"

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


def _campaign_json(campaign_id: str, reply: list[bytes]) -> bytes:
    """One countDetail entry: the campaign's counters, then its batches ordered by batchId.

    One %-format per campaign fills a template with every id and counter of it: per-scope
    formatting was most of the Python time of a whole-VDN read (docs/benchmarks.md).
    """
    check_packed_counters(campaign_id, reply[0::2])  # the campaign's packed counters, each batch's
    # Byte order of UTF-8 is code point order: the same order as sorting the decoded ids.
    batches = sorted(zip(reply[1::2], reply[2::2], strict=True))
    values = [orjson.dumps(campaign_id), *reply[0].split(b",")]
    for batch_id, packed in batches:
        values.append(orjson.dumps(_text(batch_id)))
        values += packed.split(b",")
    return _campaign_template(len(batches)) % tuple(values)


def check_packed_counters(campaign_id: str, scopes: list[bytes]) -> None:
    """Refuse packed counters the engine cannot have written (see _DIGITS_AND_COMMA)."""
    joined = b",".join(scopes)
    if not joined.translate(None, _DIGITS_AND_COMMA):
        try:
            if len(orjson.loads(b"[" + joined + b"]")) == len(RESPONSE_COUNTERS) * len(scopes):
                return
        except orjson.JSONDecodeError:
            pass
    raise CorruptCounters(
        f"campaign {campaign_id!r}: stored counters are not {len(RESPONSE_COUNTERS)} "
        f"integers ≥ 0 per scope: {scopes!r:.300}"
    )


@lru_cache(maxsize=256)
def _campaign_template(batches: int) -> bytes:
    """The JSON of a campaign with ``batches`` batches, %s where ids and counters go."""
    batch = b'{"batchId":%s,' + _COUNTER_MEMBERS + b"}"
    return (
        b'{"campaignId":%s,' + _COUNTER_MEMBERS
        + b',"batchDetail":[' + b",".join([batch] * batches) + b"]}"
    )  # fmt: skip


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
