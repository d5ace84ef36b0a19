"""The Faust agent: thin on purpose. It batches messages, hands them to the counting pipeline
and publishes the dead letters the pipeline returns."""

from __future__ import annotations

import logging
from typing import Any

import faust
from redis.asyncio import Redis

from engine.counting import EventCounter
from engine.keys import KeyLayout
from engine.pipeline import CountingPipeline, RawMessage
from isales_stats.settings import Settings

log = logging.getLogger(__name__)


def register_agents(app: faust.App, settings: Settings) -> Any:
    """Attach the counting agent to ``app``; return it (tests and benchmarks look at it)."""
    call_events = app.topic(settings.call_events_topic)
    dead_letters = app.topic(settings.dead_letter_topic)

    @app.agent(call_events, name="count-call-events")
    # Typed Any: faust's StreamT stub lacks take_events, which the Stream class has.
    async def count_call_events(stream: Any) -> None:
        redis = Redis.from_url(settings.redis_url)
        counter = EventCounter(
            redis,
            KeyLayout(settings.key_prefix),
            settings.time_zone_of,
            settings.daily_retention_days,
        )
        pipeline = CountingPipeline(counter, settings.future_tolerance_seconds)
        try:
            async for events in stream.take_events(
                settings.worker_batch_size, within=settings.worker_batch_seconds
            ):
                messages = [
                    RawMessage(
                        event.message.value,
                        event.message.key,
                        event.message.topic,
                        event.message.partition,
                        event.message.offset,
                    )
                    for event in events
                ]
                report = await pipeline.process(messages)
                for dead_letter in report.dead_letters:
                    log.warning("dead letter: %s", dead_letter.reason)
                    delivery = await dead_letters.send(
                        key=dead_letter.message.key,
                        value=dead_letter.message.value or b"",
                        headers=dead_letter.headers(),
                    )
                    await delivery  # acknowledged before the source offset can be committed
        finally:
            await redis.aclose()

    return count_call_events
