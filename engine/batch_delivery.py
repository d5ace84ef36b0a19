"""Batch delivery: a Faust Kafka transport that hands the counting agent whole fetches.

Why: Faust delivers every Kafka message through its conductor, a per-message ``Event``, a
stream queue with flow-control pressure checks, and ``Service.wait_first`` (four asyncio tasks
and an ``asyncio.wait`` per message). On a two-core machine that caps a worker near 10,000
messages/s before any work is done, while a bare aiokafka consumer reads and decodes more
than 150,000/s (both measured by ``make bench``; see docs/benchmarks.md). Counting needs
neither per-message events nor per-message tasks: it counts a batch in one Redis round trip.

How: topics registered with ``CountingApp.deliver_in_batches`` are still subscribed, fetched and
offset-tracked by Faust's own consumer (group membership, rebalances, gap tracking, periodic
commits of acknowledged offsets are all Faust's). Only the hand-over changes: the messages of
one fetch go to the handler as one list, and the agent acknowledges each message through
``Consumer.ack`` after counting it, so Faust commits exactly what was counted. Every other
topic keeps Faust's per-message path.

Two settings of Faust's are changed for batch topics, each for a measured reason: the broker
may hold a fetch for 100 ms, not 1,500 (``FETCH_MAX_WAIT_MS``), and the drain loop tells Faust's
monitor when a partition's records were handed over, as a stream would per event, so that its
livelock check does not report every lagging partition as never processed.

Correctness does not rest on this loop or on the commits: counting is idempotent in Redis,
so a message delivered again after a crash or a rebalance changes nothing.

The consumer reaches the app's hooks (the batch handlers, the resume points) through typed
methods of ``CountingApp``, looked up once per drain loop or seek, never per message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service

from isales_stats.engine import metrics

BatchHandler = Callable[[list[Any]], Awaitable[None]]
# (the assigned partitions of the batch topics) -> partition -> the next offset to count
ResumePoints = Callable[[set[Any]], Awaitable[dict[Any, int]]]


# How long the broker may hold a fetch waiting for new records. aiokafka keeps one fetch in
# flight per broker and leaves out of it the partitions whose records are still being drained;
# Faust asks the broker to hold that fetch up to 1,500 ms. When the partitions left in it are
# idle (a campaign that pauses), the busy ones wait behind it: the soak's freshness stalls of
# 1-2 s with the worker idle (docs/reliability.md). An idle worker fetches 10 times a second.
FETCH_MAX_WAIT_MS = 100


class BatchDeliveryConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with an aiokafka consumer that does not sit on idle fetches."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read when the consumer starts and makes its Fetcher (Faust passes a fixed 1,500).
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class BatchDeliveryConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with a drain loop that delivers batch topics a fetch at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Resume points ahead of Kafka's commit: the drain loop commits them once it runs.
        self._resume_commits: dict[Any, int] = {}

    def _new_consumer_thread(self) -> BatchDeliveryConsumerThread:
        return BatchDeliveryConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        """Seek to Faust's committed offsets, then to the resume points kept with the counts.

        Faust commits every few seconds; the counts and their resume points are written
        together. After a Redis crash that lost its last second of writes, the resume points
        are behind Kafka's commits, and seeking to them recounts exactly what Redis lost. A
        partition with a committed offset but no resume point at all means Redis lost
        everything: it is read again from the beginning (counting is idempotent).
        """
        await super().perform_seek()
        app = self.counting_app
        batch_topics = app.batch_handlers()
        partitions = {tp for tp in self.assignment() if tp.topic in batch_topics}
        if not partitions:
            return
        points = await app.resume_points(partitions)
        if points is None:
            return
        # One ListOffsets request for every partition: where a lost one starts again, and
        # whether a resume point still exists in the log (_check_retention).
        earliest = await self.earliest_offsets(*partitions)
        targets: dict[Any, int] = {}
        for tp in sorted(partitions):
            if tp in points:
                targets[tp] = points[tp]
            elif self._committed_offset.get(tp):
                self.log.warning("no resume point for %s in Redis: counting it again", tp)
                targets[tp] = earliest.get(tp) or 0
        if targets:
            self._check_retention(targets, earliest)
            # seek_wait runs in the consumer's own thread; a plain seek from this loop races
            # the thread that iterates the fetched records (aiokafka's fetcher then fails).
            await self.seek_wait(targets)
            for tp, offset in targets.items():
                self._read_offset[tp] = offset or None
                if offset > (self._committed_offset.get(tp) or 0):
                    # Everything before the resume point is counted. Faust's bookkeeping must
                    # start there too: from Kafka's older commit, it would wait forever for
                    # acks of offsets never delivered again, commit nothing more on the
                    # partition, and keep every later ack in memory (the commit freeze). And
                    # Kafka is told at once: a partition resumed at its end acks nothing, so
                    # nothing else would ever move its commit.
                    self._committed_offset[tp] = offset
                    self._resume_commits[tp] = offset

    def _check_retention(self, targets: dict[Any, int], earliest: Mapping[Any, int]) -> None:
        """Resume points the log no longer holds: say so loudly, and resume at its start.

        Kafka deletes old segments by the topic's retention. A resume point older than the
        earliest offset left means events were never counted and can never be: the counts of
        those days stay short. Nothing can repair that here; an operator must know (a metric,
        an error in the log) and keep the retention longer than the longest outage of the
        workers (docs/operations.md, "Topics").
        """
        for tp, offset in targets.items():
            first = earliest.get(tp) or 0
            if offset < first:
                metrics.EVENTS_LOST_TO_RETENTION.labels(tp.topic, str(tp.partition)).inc(
                    first - offset
                )
                self.log.error(
                    "%s: the resume point %d is older than the earliest offset Kafka still "
                    "holds, %d: %d events were deleted by the topic's retention before they "
                    "were counted and are missing from the statistics. Keep retention.ms "
                    "longer than the workers can be down (docs/operations.md, 'Topics').",
                    tp, offset, first, first - offset,
                )  # fmt: skip
                targets[tp] = first

    async def _commit_resume_points(self) -> None:
        """Commit what ``perform_seek`` found counted already (outside the rebalance)."""
        offsets = dict(self._resume_commits)
        self._resume_commits.clear()
        await self._commit_offsets(offsets)  # leaves out partitions no longer assigned

    # C901 on purpose: Faust's own drain loop, kept line for line beside its original so that an
    # upgrade of faust-streaming can be diffed against it; splitting it would hide the diff.
    async def _drain_messages(self, fetcher: Any) -> None:  # noqa: C901  # pragma: no cover
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        flow_suspended = self.suspend_flow.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        batch_handlers = self.counting_app.batch_handlers()
        track = self.track_message
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                if self._resume_commits and not flow_suspended():  # (not Faust's)
                    await self._commit_resume_points()
                fetched = getmany(timeout=1.0)
                await asyncio.sleep(0)
                if self.should_stop:
                    continue
                batches: dict[str, list[Any]] = {}
                handed_over: set[Any] = set()  # (not Faust's) the partitions of ``batches``
                async for tp, message in fetched:
                    if flow_suspended():
                        break  # a rebalance: Faust seeks and fetches again when it resumes
                    offset = message.offset
                    read_offset = get_read_offset(tp)
                    if read_offset is not None and offset < read_offset:
                        continue  # delivered already (Faust drops these too)
                    if read_offset and offset - read_offset > 1 and acks_enabled_for(tp.topic):
                        await self._add_gap(tp, read_offset + 1, offset)
                    set_read_offset(tp, offset)
                    if tp.topic in batch_handlers:
                        track(message)  # unacknowledged until the agent has counted it
                        batches.setdefault(tp.topic, []).append(message)
                        handed_over.add(tp)
                    else:
                        await callback(message)
                for topic, messages in batches.items():
                    await batch_handlers[topic](messages)
                # (not Faust's) What a stream would tell the monitor per event: without it, its
                # livelock check reports every lagging batch partition as never processed.
                inbound_time, now = self.app.monitor.stream_inbound_time, time.monotonic()
                for tp in handed_over:
                    inbound_time[tp] = now
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    @property
    def counting_app(self) -> CountingApp:
        """The app, typed: only ``CountingApp`` makes this consumer (``_new_transport``)."""
        app = self.app
        if not isinstance(app, CountingApp):
            raise TypeError(f"batch delivery needs a CountingApp, not {type(app).__name__}")
        return app


class BatchDeliveryTransport(faust_aiokafka.Transport):
    Consumer = BatchDeliveryConsumer


class CountingApp(faust.App):
    """A Faust app on the batch-delivery Kafka transport."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch_handlers: dict[str, BatchHandler] = {}
        self._resume_points: ResumePoints | None = None

    def _new_transport(self) -> Any:
        return BatchDeliveryTransport(self.conf.broker_consumer, self)

    def deliver_in_batches(self, topic: Any, handler: BatchHandler) -> None:
        """Subscribe to ``topic`` and hand each fetch of its messages to ``handler``."""
        for name in topic.topics:
            self._batch_handlers[name] = handler
        self.topics.add(topic)

    def resume_from(self, resume_points: ResumePoints) -> None:
        """After each assignment, seek the batch topics' partitions to ``resume_points``."""
        self._resume_points = resume_points

    def batch_handlers(self) -> Mapping[str, BatchHandler]:
        """Topic name -> the handler of its fetches (``deliver_in_batches``)."""
        return self._batch_handlers

    async def resume_points(self, partitions: set[Any]) -> dict[Any, int] | None:
        """Partition -> the next offset to count; None when no resume points are kept."""
        if self._resume_points is None:
            return None
        return await self._resume_points(partitions)
