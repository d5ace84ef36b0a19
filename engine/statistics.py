"""Reading the statistics back: the ``countDetail`` body of the iSales statistics interface.

Shared by the API and the tests. Each campaign is read by one Lua script, atomically; a whole
VDN is one pipelined round trip of such reads. An event only ever touches one campaign, so a
response never holds part of an event's effects.
"""

from __future__ import annotations

from datetime import date
from importlib.resources import files
from typing import Any

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

        def queue(pipe: Any) -> None:
            for campaign in campaign_ids:
                READ_STATISTICS.queue(
                    pipe,
                    [self.layout.campaign_totals(vdn_id, campaign)],
                    [self.layout.campaign_base(vdn_id, campaign), label, batch_id or ""],
                )

        replies = await run_pipeline(self.redis, [READ_STATISTICS], queue)
        return [
            _campaign_entry(campaign, reply)
            for campaign, reply in zip(campaign_ids, replies, strict=True)
            if reply is not None
        ]


def _campaign_entry(campaign_id: str, reply: list[Any]) -> Counters:
    totals, today, *batches = reply
    entry: Counters = {"campaignId": campaign_id}
    entry.update(_counters(totals, today))
    entry["batchDetail"] = sorted(
        (
            {"batchId": _text(batch_id), **_counters(batch_totals, batch_today)}
            for batch_id, batch_totals, batch_today in batches
        ),
        key=lambda batch: str(batch["batchId"]),
    )
    return entry


def _counters(totals_flat: list[Any], today_flat: list[Any]) -> Counters:
    """The eleven counters of the interface from a totals hash and a day hash."""
    totals = _pairs(totals_flat)
    today = _pairs(today_flat)
    values = {name: totals.get(name, 0) for name in TOTAL_COUNTERS}
    values.update({name: today.get(name, 0) for name in DAILY_COUNTERS})
    # The seed describes these two with the same words as the two they copy.
    values["calledCount"] = values["dailyCalledCount"]
    values["finishCount"] = values["totalFinishCount"]
    return values


def _pairs(flat: list[Any]) -> dict[str, int]:
    return {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
