"""The Faust agent: thin on purpose. It receives the call events of one Kafka fetch, hands
them to the counting pipeline, publishes the dead letters it returns, and acknowledges the
messages so that Faust commits their offsets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from faust.types import TP
from redis.exceptions import RedisError

from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine import metrics
from isales_stats.engine.batch_delivery import CountingApp
from isales_stats.engine.counting import CountingLimits, EventCounter
from isales_stats.engine.lifecycle import CampaignLifecycle, LifecyclePolicy
from isales_stats.engine.pipeline import AdmittedBatch, CountingPipeline
from isales_stats.engine.redis_connection import connect
from isales_stats.engine.redis_memory import REDIS_MEMORY_SECONDS, record_redis_memory

log = logging.getLogger(__name__)

# Fetches waiting for the agent; beyond this the consumer waits (back-pressure on Kafka).
FETCHES_IN_FLIGHT = 4
# How often an idle worker checks that Redis still holds what it counted (restarts of Redis).
LOSS_CHECK_SECONDS = 5.0


# C901 on purpose: the agent and its three hooks (resume points, reading again after a loss, the
# loss timer) are closures over one counter made in the worker's event loop; the complexity
# is theirs added up, each one short.
def register_agents(app: CountingApp, settings: Settings) -> Any:  # noqa: C901
    """Attach the counting agent to ``app``; return it."""
    call_events = app.topic(settings.call_events_topic)
    dead_letters = app.topic(settings.dead_letter_topic)
    fetches = app.channel(maxsize=FETCHES_IN_FLIGHT)

    async def hand_over(messages: list[Any]) -> None:
        try:
            await fetches.send(value=messages)
        except asyncio.CancelledError:
            # A revocation clears the agent's queue and cancels the puts waiting on it. Unless
            # this task itself is being stopped, drop the fetch and go on: its messages are
            # unacknowledged, so never committed, and the partition's next owner reads them.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise

    app.deliver_in_batches(call_events, hand_over)
    layout = KeyLayout(settings.key_prefix)
    counter: EventCounter | None = None  # made by the agent, in the worker's event loop

    async def resume_points(partitions: set[Any]) -> dict[Any, int]:
        """The next offset to count per partition, from the offsets stored with the counts."""
        if counter is not None:
            counter.forget_offsets((tp.topic, tp.partition) for tp in partitions)
        async with connect(settings) as redis:
            counted = await redis.hgetall(layout.counted_offsets(settings.call_events_topic))
        return {
            tp: int(counted[str(tp.partition).encode()]) + 1
            for tp in partitions
            if str(tp.partition).encode() in counted
        }

    app.resume_from(resume_points)

    async def read_again(lost_since: dict[tuple[str, int], int]) -> None:
        """Seek back to where Redis lost counts; counting them again is harmless."""
        assigned = app.consumer.assignment()
        for (topic, partition), offset in lost_since.items():
            if counter is not None:
                counter.forget_offsets([(topic, partition)])
            tp = TP(topic, partition)
            if tp not in assigned:
                continue  # moved to another worker, which resumes from Redis's offsets itself
            log.warning("Redis lost counts of %s[%d]: reading again from %d",
                        topic, partition, offset)  # fmt: skip
            metrics.REDIS_LOSSES.inc()
            # seek_wait runs in the consumer's own thread: a seek from the agent's loop would
            # race the thread that is iterating the fetched records.
            await app.consumer.seek_wait({tp: offset})

    @app.timer(LOSS_CHECK_SECONDS)  # type: ignore[untyped-decorator]  # faust is untyped
    async def look_for_lost_counts() -> None:
        if counter is not None:
            with contextlib.suppress(RedisError, OSError):
                await read_again(await counter.find_lost_offsets())

    @app.timer(REDIS_MEMORY_SECONDS)  # type: ignore[untyped-decorator]
    async def watch_redis_memory() -> None:
        if counter is not None:
            with contextlib.suppress(RedisError, OSError):
                await record_redis_memory(counter.redis)

    @app.timer(settings.campaign_sweep_seconds)  # type: ignore[untyped-decorator]
    async def release_ended_campaigns() -> None:
        """Campaigns that ended give their memory back (engine/lifecycle.py): every worker
        sweeps, each step is idempotent, so a worker down leaves the others to do it."""
        if counter is None:
            return
        lifecycle = CampaignLifecycle(
            counter.redis,
            layout,
            LifecyclePolicy.from_settings(settings),
            settings.time_zone_of,
            settings.daily_retention_days,
        )
        try:
            await lifecycle.sweep()
        except (RedisError, OSError) as error:
            metrics.LIFECYCLE_SWEEP_ERRORS.inc()
            log.warning("lifecycle sweep failed (%s); next in %.0f s",
                        error, settings.campaign_sweep_seconds)  # fmt: skip

    @app.agent(fetches, name="count-call-events")
    async def count_call_events(stream: Any) -> None:
        nonlocal counter
        redis = connect(settings)
        counter = EventCounter(
            redis,
            layout,
            settings.time_zone_of,
            settings.daily_retention_days,
            limits=CountingLimits(
                campaigns_per_vdn=settings.max_campaigns_per_vdn,
                batches_per_campaign=settings.max_batches_per_campaign,
            ),
            changes_kept=settings.push_changes_kept,
        )
        pipeline = CountingPipeline(counter, settings.future_tolerance_seconds)
        metrics.PARTITION_LAG.attach(app.consumer, settings.call_events_topic)

        async def finish(batch: AdmittedBatch, messages: list[Any]) -> None:
            report = await pipeline.count(batch)
            for dead_letter in report.dead_letters:
                log.warning("dead letter: %s", dead_letter.reason)
                delivery = await dead_letters.send(
                    key=dead_letter.message.key,
                    value=dead_letter.message.value or b"",
                    headers=dead_letter.headers(),
                )
                await delivery  # in Kafka before the source offset can be committed
            await read_again(report.lost_since)
            for message in messages:
                app.consumer.ack(message)
            metrics.PARTITION_LAG.counted(messages)

        # Two stages: the next fetch is decoded while Redis counts the previous one. Batches
        # still reach Redis one after the other, in fetch order.
        counting: asyncio.Task[None] | None = None
        try:
            async for messages in stream:
                batch = pipeline.admit(messages)
                if counting is not None:
                    await counting
                counting = asyncio.create_task(finish(batch, messages))
            if counting is not None:
                await counting
        finally:
            await redis.aclose()

    return count_call_events
