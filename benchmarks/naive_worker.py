"""Plain Faust agents for the engine benchmark, on Faust's default per-message transport.

    python -m benchmarks.naive_worker            one Redis round trip per event (the baseline)
    python -m benchmarks.naive_worker --no-op    no work at all: what Faust's delivery costs

The baseline uses the same counting script, so it is just as correct; only the shape differs.
The no-op agent reports its progress to Redis every 1,000 events (key ``{prefix}:noop``).
"""

from __future__ import annotations

import contextlib
import sys

import faust
from redis.asyncio import Redis

from isales_stats.core.events import InvalidEvent, decode_event
from isales_stats.core.settings import get_settings
from isales_stats.engine.app import broker_credentials
from isales_stats.engine.context import CountingContext
from isales_stats.engine.counting import NO_LIMITS, EventCounter


def main() -> None:
    settings = get_settings()
    app = faust.App(
        settings.worker_group,
        broker=settings.kafka_url,
        broker_credentials=broker_credentials(settings),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(settings.call_events_topic)

    if "--no-op" in sys.argv:

        @app.agent(topic)
        async def take_and_drop(stream: faust.StreamT[bytes]) -> None:
            redis = Redis.from_url(settings.redis_url)
            seen = 0
            async for _value in stream:
                seen += 1
                if seen % 1000 == 0:
                    await redis.set(f"{settings.key_prefix}:noop", seen)

    else:

        @app.agent(topic)
        async def count_one_by_one(stream: faust.StreamT[bytes]) -> None:
            redis = Redis.from_url(settings.redis_url)
            context = CountingContext.from_settings(settings, retention_days=40, limits=NO_LIMITS)
            counter = EventCounter(redis, context)
            async for value in stream:
                with contextlib.suppress(InvalidEvent):
                    await counter.count([decode_event(value)])

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
