"""A read split at its round trips, so that whoever owns the pipeline can add to it.

A reader's method that ends in ``_read`` does not talk to Redis: it returns a ``PipelinedRead``,
the commands of the read's first round trip (``queue``, on a pipeline someone else sends) and
what makes the answer of their replies (``finish``, which may need round trips of its own, as a
whole VDN does once it knows its campaigns). The API queues its admission of the request ahead
of those commands on a pipeline it owns (api/admission.py), so that deciding whether a request
may be served costs no round trip of its own; ``run_read`` is the same read without anything
ahead of it (the tests, the live page, benchmarks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from isales_stats.engine.redis_connection import AnyRedis, LuaScript, run_pipeline

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
