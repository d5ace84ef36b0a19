"""A read split at its round trips, so that whoever owns the pipeline can add to it.

A reader's method that ends in ``_read`` does not talk to Redis: it returns a ``PipelinedRead``,
the commands of the read's first round trip (``queue``, on a pipeline someone else sends) and
what makes the answer of their replies (``finish``, which may need round trips of its own, as a
whole VDN does once it knows its campaigns). The API queues its admission of the request ahead
of those commands on a pipeline it owns (api/admission.py), so that deciding whether a request
may be served costs no round trip of its own; ``run_read`` is the same read without anything
ahead of it (the tests, the live page, benchmarks).

The readers of a VDN's campaigns (statistics, decisions, exports) share the two reads that
make a whole VDN: ``live_campaigns_read`` lists its campaigns, ``campaigns_script_read`` runs a
read script over them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis.asyncio.cluster import RedisCluster

from isales_stats.core.keys import KeyLayout
from isales_stats.engine.redis_connection import AnyRedis, LuaScript, run_pipeline, text_of

T = TypeVar("T")


@dataclass(frozen=True)
class PipelinedRead(Generic[T]):
    """``queue(pipe)`` adds the first round trip's commands to a pipeline; ``finish`` gets
    exactly their replies, in order, and makes the answer. ``scripts`` are the Lua scripts
    ``queue`` names, loaded again when Redis answers NOSCRIPT (``run_pipeline``)."""

    queue: Callable[[Any], None]
    finish: Callable[[list[Any]], Awaitable[T]]
    scripts: tuple[LuaScript, ...] = ()


async def run_read(redis: AnyRedis, read: PipelinedRead[T]) -> T:
    """The read on its own: its first round trip, then its answer."""
    replies = await run_pipeline(redis, read.scripts, read.queue)
    return await read.finish(replies)


def reads_together(reads: Sequence[PipelinedRead[T]]) -> PipelinedRead[list[T]]:
    """``reads`` as one: their first round trips sent as one, their answers in order (each
    read's ``finish`` gets the replies of the commands it queued, counted as it queues them)."""
    spans: list[tuple[int, int]] = []

    def queue(pipe: Any) -> None:
        spans.clear()  # run_pipeline queues again after NOSCRIPT
        for read in reads:
            start = len(pipe)
            read.queue(pipe)
            spans.append((start, len(pipe)))

    async def answers(replies: list[Any]) -> list[T]:
        return [
            await read.finish(replies[start:end])
            for read, (start, end) in zip(reads, spans, strict=True)
        ]

    scripts = tuple(dict.fromkeys(script for read in reads for script in read.scripts))
    return PipelinedRead(queue, answers, scripts)


def live_campaigns_read(layout: KeyLayout, vdn_id: int) -> PipelinedRead[list[str]]:
    """The VDN's live campaigns (what a whole VDN answers), sorted, in one round trip."""

    def list_campaigns(pipe: Any) -> None:
        pipe.smembers(layout.vdn_campaigns(vdn_id))

    async def sorted_ids(replies: list[Any]) -> list[str]:
        (members,) = replies
        return sorted(text_of(member) for member in members)

    return PipelinedRead(list_campaigns, sorted_ids)


def campaigns_script_read(
    redis: AnyRedis,
    script: LuaScript,
    campaign_keys: list[str],
    arguments: list[str],
    finish: Callable[[list[Any]], Awaitable[T]],
) -> PipelinedRead[T]:
    """``script`` over campaigns, a key each, in one round trip; ``finish`` gets its replies, one
    per key in ``campaign_keys``' order. One script call reads every campaign on a single Redis,
    atomically; a cluster needs one per campaign (each names its own slot), still sent in one go.
    """
    groups = (
        [[key] for key in campaign_keys] if isinstance(redis, RedisCluster) else [campaign_keys]
    )

    def queue(pipe: Any) -> None:
        for group in groups:
            script.queue(pipe, group, arguments)

    async def per_campaign(replies: list[Any]) -> T:
        return await finish([reply for group in replies for reply in group])

    return PipelinedRead(queue, per_campaign, (script,))
