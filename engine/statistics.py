"""Reading the statistics back: the ``countDetail`` body of the iSales statistics interface.

Shared by the API and the tests. Each campaign is read by one Lua script, atomically; a whole
VDN is one pipelined round trip of such reads. An event only ever touches one campaign, so a
response never holds part of an event's effects.
"""

from __future__ import annotations

from datetime import date
from importlib.resources import files
from typing import Any

from redis.asyncio.cluster import RedisCluster

from engine.keys import DAILY_COUNTERS, TOTAL_COUNTERS, KeyLayout
from engine.redis_connection import AnyRedis, LuaScript, run_pipeline

READ_STATISTICS = LuaScript(files("engine").joinpath("read_statistics.lua").read_text())

Counters = dict[str, Any]


class StatisticsReader:
    def __init__(self, redis: AnyRedis, layout: KeyLayout) -> None:
        self.redis = redis
        self.layout = layout

    async def read_count_detail(
        self,
        vdn_id: int,
        day: date,
        campaign_id: str | None = None,
        batch_id: str | None = None,
    ) -> list[Counters]:
        """countDetail for a VDN (every campaign) or one campaign (and one batch, when given)."""
        if campaign_id is None:
            members = await self.redis.smembers(self.layout.vdn_campaigns(vdn_id))
            campaign_ids = sorted(_text(member) for member in members)
        else:
            campaign_ids = [campaign_id]
        if not campaign_ids:
            return []
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
                    [label, batch_id or ""]
                    + [self.layout.campaign_base(vdn_id, campaign) for campaign in group],
                )

        replies = [reply for group in await run_pipeline(self.redis, [READ_STATISTICS], queue)
                   for reply in group]  # fmt: skip
        return [
            _campaign_entry(campaign, reply)
            for campaign, reply in zip(campaign_ids, replies, strict=True)
            if reply is not None
        ]


# The order in which read_statistics.lua returns a scope's counters.
_COUNTER_ORDER = (*TOTAL_COUNTERS, *DAILY_COUNTERS)
_SCOPE_SIZE = len(_COUNTER_ORDER)


def _campaign_entry(campaign_id: str, reply: list[Any]) -> Counters:
    entry: Counters = {"campaignId": campaign_id, **_counters(reply[:_SCOPE_SIZE])}
    batches = []
    for start in range(_SCOPE_SIZE, len(reply), _SCOPE_SIZE + 1):
        batch = {"batchId": _text(reply[start])}
        batch.update(_counters(reply[start + 1 : start + 1 + _SCOPE_SIZE]))
        batches.append(batch)
    batches.sort(key=lambda batch: str(batch["batchId"]))
    entry["batchDetail"] = batches
    return entry


def _counters(values: list[int]) -> Counters:
    """The eleven counters of the interface from the nine stored ones."""
    counters: Counters = dict(zip(_COUNTER_ORDER, values, strict=True))
    # The seed describes these two with the same words as the two they copy.
    counters["calledCount"] = counters["dailyCalledCount"]
    counters["finishCount"] = counters["totalFinishCount"]
    return counters


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
