"""A campaign's idempotence state as operators and tests see it: how much it holds.

The state is what makes counting exact (each record's state, each callId counted, each
record's flags per day: engine/count_events/) and almost all of the memory Redis holds. Its
layout is the counting script's business; Python outside the engine asks here, so that a
change of that layout (docs/adr/0005-bucketed-state.md weighs one) changes one module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from isales_stats.core.keys import KeyLayout
from isales_stats.engine.redis_connection import AnyRedis, run_pipeline


def queue_state_size(pipe: Any, layout: KeyLayout, vdn_id: int, campaign_id: str) -> None:
    """Queue the two replies ``sizes_of`` reads for one campaign: records, callIds."""
    pipe.hlen(layout.campaign_records(vdn_id, campaign_id))
    pipe.scard(layout.campaign_calls(vdn_id, campaign_id))


def sizes_of(replies: Sequence[Any]) -> list[tuple[int, int]]:
    """(records, callIds) per campaign, from the replies ``queue_state_size`` queued."""
    return [
        (int(records), int(calls))
        for records, calls in zip(replies[::2], replies[1::2], strict=True)
    ]


async def state_sizes(
    redis: AnyRedis, layout: KeyLayout, campaigns: Sequence[tuple[int, str]]
) -> list[tuple[int, int]]:
    """(records, callIds) held for each campaign, in one round trip."""

    def queue(pipe: Any) -> None:
        for vdn_id, campaign_id in campaigns:
            queue_state_size(pipe, layout, vdn_id, campaign_id)

    return sizes_of(await run_pipeline(redis, [], queue) if campaigns else [])
