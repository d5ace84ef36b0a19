"""From raw Kafka messages to counters: decode, admit, count, and set aside what is bad.

Free of Faust, so that it is tested and benchmarked directly. The Faust agent only feeds it
batches of messages and publishes the dead letters it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redis.exceptions import RedisError

from isales_stats.core.clock_skew import latest_admitted_ms
from isales_stats.core.days import Clock, system_clock
from isales_stats.core.events import (
    DEAD_LETTER_CATEGORY,
    DEAD_LETTER_REASON,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
    CallEvent,
    InvalidEvent,
    decode_event,
)
from isales_stats.engine import metrics
from isales_stats.engine.counting import CountingOutcome, EventCounter

log = logging.getLogger(__name__)


class SourceMessage(Protocol):
    """One Kafka record as it arrived, with where it came from (for the dead-letter topic).

    Faust's own ``Message`` has these attributes, so the agent hands its messages over as they
    are: copying tens of thousands of them a second into another class costs more than
    decoding them.
    """

    @property
    def value(self) -> bytes | None: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A SourceMessage made by hand (tests, tools)."""

    value: bytes | None
    key: bytes | None = None
    topic: str = ""
    partition: int = -1
    offset: int = -1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message: SourceMessage
    reason: str
    # a short label for the metric: invalid, future, batch-conflict, limit, campaign-released
    category: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (DEAD_LETTER_REASON, self.reason.encode()),
            (DEAD_LETTER_CATEGORY, self.category.encode()),
            (SOURCE_TOPIC, self.message.topic.encode()),
            (SOURCE_PARTITION, str(self.message.partition).encode()),
            (SOURCE_OFFSET, str(self.message.offset).encode()),
        ]


@dataclass
class AdmittedBatch:
    """Events that passed the contract, and the dead letters of those that did not."""

    events: list[CallEvent] = field(default_factory=list)
    sources: dict[int, SourceMessage] = field(default_factory=dict)  # id(event) -> its message
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # (topic, partition) -> the last offset of the batch: stored with the counts (resume points)
    last_offsets: dict[tuple[str, int], int] = field(default_factory=dict)


@dataclass
class BatchReport:
    counted: int = 0
    duplicates: int = 0
    too_old_for_daily: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # (topic, partition) -> offset: Redis lost counts from there; read them again
    lost_since: dict[tuple[str, int], int] = field(default_factory=dict)


class CountingPipeline:
    def __init__(
        self,
        counter: EventCounter,
        future_tolerance_seconds: int,
        clock: Clock = system_clock,
        retry_delays: Sequence[float] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
    ) -> None:
        self.counter = counter
        self.future_tolerance_seconds = future_tolerance_seconds
        self.clock = clock
        self.retry_delays = retry_delays

    async def process(self, messages: Sequence[SourceMessage]) -> BatchReport:
        """Decode, admit and count one batch."""
        return await self.count(self.admit(messages))

    def admit(self, messages: Sequence[SourceMessage]) -> AdmittedBatch:
        """Decode a batch and set aside what breaks the contract (CPU only, no I/O).

        Separate from ``count`` so that the agent can decode the next fetch while Redis is
        still counting the previous one.
        """
        batch = AdmittedBatch()
        latest_ms = latest_admitted_ms(self.clock(), self.future_tolerance_seconds)
        for message in messages:
            if message.partition >= 0:
                batch.last_offsets[(message.topic, message.partition)] = message.offset
            try:
                event = decode_event(message.value)
            except InvalidEvent as error:
                batch.dead_letters.append(DeadLetter(message, str(error), "invalid"))
                continue
            if event.occurred_at_ms > latest_ms:
                reason = (
                    f"occurredAt is {(event.occurred_at_ms - latest_ms) // 1000 + 1} s beyond "
                    f"the allowed clock skew of {self.future_tolerance_seconds} s"
                )
                batch.dead_letters.append(DeadLetter(message, reason, "future"))
                continue
            batch.events.append(event)
            batch.sources[id(event)] = message
        return batch

    async def count(self, batch: AdmittedBatch) -> BatchReport:
        """Count the admitted events; batch conflicts join the dead letters."""
        outcome = await self._count_until_done(batch.events, batch.last_offsets)
        report = BatchReport(
            counted=outcome.applied,
            duplicates=outcome.duplicates,
            too_old_for_daily=outcome.too_old,
            dead_letters=batch.dead_letters,
            lost_since=outcome.lost_since,
        )
        for event in outcome.conflicts:
            reason = f"batchId {event.batch_id!r} contradicts the batch recorded for dataId"
            report.dead_letters.append(
                DeadLetter(batch.sources[id(event)], reason, "batch-conflict")
            )
        for event, reason in outcome.over_limit:
            report.dead_letters.append(DeadLetter(batch.sources[id(event)], reason, "limit"))
        for event, reason in outcome.released:
            report.dead_letters.append(
                DeadLetter(batch.sources[id(event)], reason, "campaign-released")
            )
        self._observe(report)
        return report

    async def _count_until_done(
        self, events: list[CallEvent], last_offsets: dict[tuple[str, int], int]
    ) -> CountingOutcome:
        """Counting is idempotent, so a failed batch is simply tried again until Redis is back.

        Raising instead would let Faust acknowledge the messages and lose them.
        """
        attempt = 0
        while True:
            try:
                with metrics.BATCH_SECONDS.time():
                    return await self.counter.count(events, last_offsets)
            except (RedisError, OSError) as error:
                delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                attempt += 1
                metrics.REDIS_RETRIES.inc()
                log.warning("counting failed (%s); retry %d in %.1f s", error, attempt, delay)
                await asyncio.sleep(delay)

    @staticmethod
    def _observe(report: BatchReport) -> None:
        metrics.EVENTS_COUNTED.inc(report.counted)
        metrics.EVENTS_DUPLICATE.inc(report.duplicates)
        metrics.EVENTS_TOO_OLD_FOR_DAILY.inc(report.too_old_for_daily)
        for dead_letter in report.dead_letters:
            metrics.EVENTS_DEAD_LETTERED.labels(dead_letter.category).inc()
