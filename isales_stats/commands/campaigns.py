"""``isales-stats campaigns list | delete``: the operator's view of campaign lifecycles.

``list`` shows what each campaign of a VDN holds and what happens to it next; ``delete`` ends
one now (its idempotence state and its counters, in one atomic step, as the lifecycle does
after the retention), safe while workers count: a later event of it is refused by the counting
script, which reads the tombstone in the same Redis Cluster slot, and goes to the dead-letter
topic (category campaign-released). Both talk to Redis only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from datetime import UTC, datetime, tzinfo
from typing import Any

from isales_stats.core.days import DAY_SECONDS
from isales_stats.core.settings import Settings
from isales_stats.engine.context import CountingContext
from isales_stats.engine.lifecycle import CampaignLifecycle
from isales_stats.engine.redis_connection import connect

log = logging.getLogger("isales_stats.campaigns")


def _lifecycle(redis: Any, settings: Settings) -> CampaignLifecycle:
    return CampaignLifecycle(redis, CountingContext.from_settings(settings))


def list_campaigns(settings: Settings, vdn_id: int, as_json: bool) -> int:
    async def describe() -> list[dict[str, Any]]:
        async with connect(settings) as redis:
            return await _lifecycle(redis, settings).describe(vdn_id)

    rows = asyncio.run(describe())
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    zone = settings.time_zone_of(vdn_id)  # the moments in the VDN's zone, offset shown
    print(f"{'campaign':<24} {'state':<9} {'records':>9} {'callIds':>9} "
          f"{'last-active':<11} next-step")  # fmt: skip
    for row in rows:
        active = row["lastActiveDay"]
        print(
            f"{row['campaignId']:<24} {row['state']:<9} {row['records']:>9} {row['callIds']:>9} "
            f"{_day(active) if active is not None else '-':<11} {_moment(row['nextStepAt'], zone)}"
        )
    return 0


def delete_campaign(settings: Settings, vdn_id: int, campaign_id: str) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")

    async def delete() -> dict[str, Any]:
        async with connect(settings) as redis:
            step = await _lifecycle(redis, settings).delete(vdn_id, campaign_id)
        return {"vdnId": step.vdn_id, "campaignId": step.campaign_id, "state": step.state,
                "keysRemoved": step.keys_removed}  # fmt: skip

    report = asyncio.run(delete())
    print(json.dumps(report))
    return 0


def _day(days_since_epoch: int) -> str:
    return datetime.fromtimestamp(days_since_epoch * DAY_SECONDS, UTC).date().isoformat()


def _moment(epoch_seconds: float | None, zone: tzinfo) -> str:
    if epoch_seconds is None:
        return "-"
    moment = datetime.fromtimestamp(epoch_seconds, zone).isoformat(timespec="minutes")
    return moment + (" (due)" if epoch_seconds <= time.time() else "")
