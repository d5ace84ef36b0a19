"""A campaign's idempotence state read from a synchronous client (test threads, benchmarks):
its size with engine/state.py's commands, and whether a record is in it."""

from __future__ import annotations

from collections.abc import Sequence

from redis import Redis

from isales_stats.core.keys import KeyLayout
from isales_stats.engine.state import queue_state_size, sizes_of


def state_sizes(
    redis: Redis, layout: KeyLayout, campaigns: Sequence[tuple[int, str]]
) -> list[tuple[int, int]]:
    """(records, callIds) held for each campaign."""
    with redis.pipeline(transaction=False) as pipe:
        for vdn_id, campaign_id in campaigns:
            queue_state_size(pipe, layout, vdn_id, campaign_id)
        return sizes_of(pipe.execute())


def records_known(
    redis: Redis, layout: KeyLayout, records: Sequence[tuple[int, str, str]]
) -> list[bool]:
    """Whether each (vdnId, campaignId, dataId) is in its campaign's state."""
    with redis.pipeline(transaction=False) as pipe:
        for vdn_id, campaign_id, data_id in records:
            pipe.hexists(layout.campaign_records(vdn_id, campaign_id), data_id)
        return [bool(known) for known in pipe.execute()]
