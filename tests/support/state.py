"""A campaign's idempotence state read from a synchronous client (test threads, benchmarks).

The same script as engine/state.py (read_state.lua): the buckets' layout is addressed in Lua
alone, never computed here.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis import Redis

from isales_stats.core.keys import KeyLayout
from isales_stats.engine.state import READ_STATE


def state_sizes(
    redis: Redis, layout: KeyLayout, campaigns: Sequence[tuple[int, str]]
) -> list[tuple[int, int]]:
    """(records, callIds) held for each campaign."""
    script = redis.register_script(READ_STATE.source)
    with redis.pipeline(transaction=False) as pipe:
        for vdn_id, campaign_id in campaigns:
            script(keys=[layout.campaign_records(vdn_id, campaign_id)], args=["sizes"], client=pipe)
        return [(int(records), int(calls)) for records, calls in pipe.execute()]


def records_known(
    redis: Redis, layout: KeyLayout, records: Sequence[tuple[int, str, str]]
) -> list[bool]:
    """Whether each (vdnId, campaignId, dataId) is in its campaign's state."""
    script = redis.register_script(READ_STATE.source)
    with redis.pipeline(transaction=False) as pipe:
        for vdn_id, campaign_id, data_id in records:
            script(
                keys=[layout.campaign_records(vdn_id, campaign_id)],
                args=["known", data_id],
                client=pipe,
            )
        return [bool(known[0]) for known in pipe.execute()]
