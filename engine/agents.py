"""The Faust agent: thin on purpose. It receives the call events of one Kafka fetch, hands
them to the counting pipeline, publishes the dead letters it returns, and acknowledges the
messages so that Faust commits their offsets.

``CountingWorker`` holds the agent and the hooks around it (where to resume a partition, reading
again what Redis lost, the timers); ``register_agents`` attaches them to the Faust app. The
class needs no running worker: tests build it on an app that is never started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable
from typing import Any

from faust.types import TP
from redis.exceptions import RedisError

from isales_stats.core.settings import Settings
from isales_stats.engine import metrics
from isales_stats.engine.batch_delivery import CountingApp
from isales_stats.engine.context import CountingContext
from isales_stats.engine.counting import EventCounter
from isales_stats.engine.lifecycle import CampaignLifecycle
from isales_stats.engine.notifications.sweep import (
    NOTIFICATION_SWEEP_SECONDS,
    NotificationSweep,
    sweep_notifications,
)
from isales_stats.engine.pipeline import AdmittedBatch, CountingPipeline, DeadLetter
from isales_stats.engine.redis_connection import connect
from isales_stats.engine.redis_memory import REDIS_MEMORY_SECONDS, record_redis_memory

log = logging.getLogger(__name__)

# Fetches waiting for the agent; beyond this the consumer waits (back-pressure on Kafka).
FETCHES_IN_FLIGHT = 4
# How often an idle worker checks that Redis still holds what it counted (restarts of Redis).
LOSS_CHECK_SECONDS = 5.0


class CountingWorker:
    """One worker process's counting: the agent and its hooks, on the topics of ``settings``,
    counting with ``context`` (the settings' own unless given: a test's clock).

    The counter is made by the agent when it starts, in the worker's event loop (an asyncio
    Redis client belongs to the loop it was made in); until then the hooks that need it do
    nothing.
    """

    def __init__(
        self, app: CountingApp, settings: Settings, context: CountingContext | None = None
    ) -> None:
        self.app = app
        self.settings = settings
        self.context = context or CountingContext.from_settings(settings)
        self.call_events = app.topic(settings.call_events_topic)
        self.dead_letters = app.topic(settings.dead_letter_topic)
        self.fetches = app.channel(maxsize=FETCHES_IN_FLIGHT)
        self.counter: EventCounter | None = None

    async def hand_over(self, messages: list[Any]) -> None:
        """The consumer's handler of a fetch: into the agent's channel, waiting while it is full."""
        try:
            await self.fetches.send(value=messages)
        except asyncio.CancelledError:
            # A revocation clears the agent's queue and cancels the puts waiting on it. Unless
            # this task itself is being stopped, drop the fetch and go on: its messages are
            # unacknowledged, so never committed, and the partition's next owner reads them.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise

    async def resume_points(self, partitions: set[Any]) -> dict[Any, int]:
        """The next offset to count per partition, from the offsets stored with the counts."""
        if self.counter is not None:
            self.counter.forget_offsets((tp.topic, tp.partition) for tp in partitions)
        topic = self.settings.call_events_topic
        async with connect(self.settings) as redis:
            counted = await redis.hgetall(self.context.layout.counted_offsets(topic))
        return {
            tp: int(counted[str(tp.partition).encode()]) + 1
            for tp in partitions
            if str(tp.partition).encode() in counted
        }

    async def read_again(self, lost_since: dict[tuple[str, int], int]) -> None:
        """Seek back to where Redis lost counts; counting them again is harmless."""
        consumer = self.app.consumer
        assigned = consumer.assignment()
        for (topic, partition), offset in lost_since.items():
            if self.counter is not None:
                self.counter.forget_offsets([(topic, partition)])
            tp = TP(topic, partition)
            if tp not in assigned:
                continue  # moved to another worker, which resumes from Redis's offsets itself
            log.warning("Redis lost counts of %s[%d]: reading again from %d",
                        topic, partition, offset)  # fmt: skip
            metrics.REDIS_LOSSES.inc()
            # seek_wait runs in the consumer's own thread: a seek from the agent's loop would
            # race the thread that is iterating the fetched records.
            await consumer.seek_wait({tp: offset})

    async def look_for_lost_counts(self) -> None:
        """Timer (LOSS_CHECK_SECONDS): heal a loss of Redis even when no event follows it."""
        if self.counter is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.read_again(await self.counter.find_lost_offsets())

    async def watch_redis_memory(self) -> None:
        """Timer (REDIS_MEMORY_SECONDS): how full Redis is, into the gauges."""
        if self.counter is not None:
            with contextlib.suppress(RedisError, OSError):
                await record_redis_memory(self.counter.redis)

    async def release_ended_campaigns(self) -> None:
        """Timer (ISALES_CAMPAIGN_SWEEP_SECONDS): campaigns that ended give their memory back
        (engine/lifecycle.py). Every worker sweeps, each step is idempotent, so a worker down
        leaves the others to do it."""
        if self.counter is None:
            return
        lifecycle = CampaignLifecycle(self.counter.redis, self.context)
        try:
            await lifecycle.sweep()
        except (RedisError, OSError) as error:
            metrics.LIFECYCLE_SWEEP_ERRORS.inc()
            log.warning("lifecycle sweep failed (%s); next in %.0f s",
                        error, self.settings.campaign_sweep_seconds)  # fmt: skip

    async def sweep_notifications(self) -> None:
        """Timer (NOTIFICATION_SWEEP_SECONDS): what the clock decides (stalls, a window's
        abandon status as old calls leave it, the day that ended) into the outboxes, and
        campaigns with entries back in the due set (engine/notifications/sweep.py). Every
        worker sweeps; the script is idempotent."""
        if self.counter is None or not self.settings.notifications:
            return
        sweep = NotificationSweep(self.counter.redis, self.context, self.settings.stall_minutes)
        if not await sweep_notifications(sweep):
            metrics.NOTIFICATION_SWEEP_ERRORS.inc()

    async def count_call_events(self, stream: AsyncIterable[list[Any]]) -> None:
        """The agent: counts each fetch of ``stream`` in two stages, the next fetch decoded
        while Redis counts the previous one. Batches still reach Redis one after the other,
        in fetch order."""
        redis = connect(self.settings)
        self.counter = EventCounter(redis, self.context)
        pipeline = CountingPipeline(self.counter, self.settings.future_tolerance_seconds)
        metrics.PARTITION_LAG.attach(self.app.consumer, self.settings.call_events_topic)
        counting: asyncio.Task[None] | None = None
        try:
            async for messages in stream:
                batch = pipeline.admit(messages)
                if counting is not None:
                    await counting
                counting = asyncio.create_task(self.finish(pipeline, batch, messages))
            if counting is not None:
                await counting
        finally:
            await redis.aclose()

    async def finish(
        self, pipeline: CountingPipeline, batch: AdmittedBatch, messages: list[Any]
    ) -> None:
        """The second stage: count ``batch``, publish its dead letters, read again what Redis
        lost, then acknowledge ``messages`` (Faust commits only acknowledged offsets)."""
        report = await pipeline.count(batch)
        for dead_letter in report.dead_letters:
            await self.send_dead_letter(dead_letter)
        await self.read_again(report.lost_since)
        for message in messages:
            self.app.consumer.ack(message)
        metrics.PARTITION_LAG.counted(messages)

    async def send_dead_letter(self, dead_letter: DeadLetter) -> None:
        """Publish ``dead_letter``; return once Kafka has it, so that its source offset can
        be committed after it."""
        log.warning("dead letter: %s", dead_letter.reason)
        delivery = await self.dead_letters.send(
            key=dead_letter.message.key,
            value=dead_letter.message.value or b"",
            headers=dead_letter.headers(),
        )
        await delivery


def register_agents(app: CountingApp, settings: Settings) -> Any:
    """Attach a ``CountingWorker`` to ``app``: its batch handler, resume points, timers and
    agent; return the agent."""
    worker = CountingWorker(app, settings)
    app.deliver_in_batches(worker.call_events, worker.hand_over)
    app.resume_from(worker.resume_points)
    app.timer(LOSS_CHECK_SECONDS)(worker.look_for_lost_counts)
    app.timer(REDIS_MEMORY_SECONDS)(worker.watch_redis_memory)
    app.timer(settings.campaign_sweep_seconds)(worker.release_ended_campaigns)
    app.timer(NOTIFICATION_SWEEP_SECONDS)(worker.sweep_notifications)
    return app.agent(worker.fetches, name="count-call-events")(worker.count_call_events)
