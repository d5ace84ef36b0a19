"""``isales-stats watch``: the statistics stream, a line per change, until Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime

from isales_stats.client import PushedChange, StatisticsApiError, watch


def follow(
    url: str,
    vdn_id: int,
    *,
    campaign_id: str | None,
    access_key: str | None,
    secret_key: str | None,
    after: str | None,
    as_json: bool,
) -> int:
    """Print every change until interrupted: 0 then, 1 when the API refuses for good."""
    changes = watch(
        url,
        vdn_id,
        campaign_id=campaign_id,
        access_key=access_key,
        secret_key=secret_key,
        last_event_id=after,
    )

    async def run() -> None:
        async for change in changes:
            print(as_json_line(change) if as_json else as_text(change), flush=True)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        return 0
    except StatisticsApiError as error:
        print(f"isales-stats watch: {url}: {error}", file=sys.stderr)
        return 1
    return 0


def as_text(change: PushedChange) -> str:
    """``12:00:01  campaign 1001  change    calls 12 (today 5)  connected 3 …``"""
    counters = change.counters
    return (
        f"{datetime.now():%H:%M:%S}  campaign {change.campaign_id}  "
        f"{'snapshot' if change.snapshot else 'change':8}  "
        f"records {counters['totalCount']} (uncalled {counters['unCallCount']})  "
        f"calls {counters['totalCalledCount']} (today {counters['dailyCalledCount']})  "
        f"connected {counters['totalCallSucc']} (today {counters['dailyCallSucc']})  "
        f"finished {counters['totalFinishCount']} (today {counters['dailyFinishCount']})"
    )


def as_json_line(change: PushedChange) -> str:
    return json.dumps(
        {
            "id": change.event_id,
            "campaignId": change.campaign_id,
            "changeId": change.change_id,
            "statDate": change.stat_date,
            "snapshot": change.snapshot,
            **change.counters,
        },
        ensure_ascii=False,
    )
