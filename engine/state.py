"""A campaign's idempotence state as operators and tests see it: its size, and known records.

The state (each record's state, each callId counted, each record's flags per day) lives in
bucketed hashes (buckets.lua) whose layout only Lua addresses: an id's bucket depends on the
structure's size at the moment. Python asks ``read_state.lua``, which uses the same functions
as the counting script, instead of computing a bucket itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from isales_stats.core.keys import KeyLayout
from isales_stats.engine.redis_connection import AnyRedis, run_pipeline
from isales_stats.engine.scripts import load_script

READ_STATE = load_script("read_state.lua", libraries=("buckets.lua",))


async def state_sizes(
    redis: AnyRedis, layout: KeyLayout, campaigns: Sequence[tuple[int, str]]
) -> list[tuple[int, int]]:
    """(records, callIds) held for each campaign, in one round trip."""

    def queue(pipe: Any) -> None:
        for vdn_id, campaign_id in campaigns:
            READ_STATE.queue(pipe, [layout.campaign_records(vdn_id, campaign_id)], ["sizes"])

    replies = await run_pipeline(redis, [READ_STATE], queue) if campaigns else []
    return [(int(records), int(calls)) for records, calls in replies]


async def records_known(
    redis: AnyRedis, layout: KeyLayout, vdn_id: int, campaign_id: str, data_ids: Sequence[str]
) -> list[bool]:
    """Whether each record is in the campaign's state: an event of it was counted."""
    if not data_ids:
        return []
    (known,) = await run_pipeline(
        redis,
        [READ_STATE],
        lambda pipe: READ_STATE.queue(
            pipe, [layout.campaign_records(vdn_id, campaign_id)], ["known", *data_ids]
        ),
    )
    return [bool(flag) for flag in known]
