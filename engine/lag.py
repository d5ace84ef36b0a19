"""Consumer lag per partition, as Prometheus reads it at each scrape.

These figures for each partition of the call-events topic that this worker owns:

- ``isales_partition_uncounted_messages``: the log end minus the next offset to count, the work
  waiting. It says whether the workers keep up.
- ``isales_partition_uncommitted_messages``: the log end minus the group's committed offset,
  what a restart would read again. It goes to 0 a few seconds after the stream pauses; one
  that stays up while nothing is uncounted is a frozen commit;
  ``isales_partition_committed_offset`` is the offset itself, for an alert on one that stops
  moving while messages wait.
- ``isales_partition_last_counted_event_age_seconds``: now minus the Kafka timestamp of the
  last event counted, lag in time. It also grows on a partition with no traffic, so an alert
  pairs it with ``uncounted > 0`` (docs/operations.md, "What to watch").

They are worked out when Prometheus scrapes, from what the consumer knows already (the log
end of its last fetch, Faust's committed offsets) and from what the agent notes after each
counted batch: nothing runs per event, and an idle worker's figures are as fresh as a busy
one's. The scrape runs in the metrics server's thread, so it only reads, and a read that
races the consumer's own thread skips that scrape rather than fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class LastCounted:
    offset: int
    timestamp: float  # the Kafka record's, in seconds


class PartitionLag(Collector):
    """The lag gauges of the partitions this worker's consumer owns (one consumer a process)."""

    def __init__(self) -> None:
        self.consumer: Any = None  # Faust's consumer, attached by the agent once it runs
        self.topic = ""
        self.last_counted: dict[int, LastCounted] = {}

    def attach(self, consumer: Any, topic: str) -> None:
        self.consumer, self.topic = consumer, topic

    def counted(self, messages: Sequence[Any]) -> None:
        """Note the last message of each partition of a batch that is now in Redis."""
        noted: set[int] = set()
        for message in reversed(messages):
            if message.partition not in noted:
                noted.add(message.partition)
                self.last_counted[message.partition] = LastCounted(
                    message.offset, message.timestamp
                )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["topic", "partition"]
        uncounted = GaugeMetricFamily(
            "isales_partition_uncounted_messages",
            "Messages after the last one counted, up to the log end of the last fetch",
            labels=labels,
        )
        uncommitted = GaugeMetricFamily(
            "isales_partition_uncommitted_messages",
            "Messages after the consumer group's committed offset, up to the log end",
            labels=labels,
        )
        committed_offset = GaugeMetricFamily(
            "isales_partition_committed_offset",
            "The consumer group's committed offset (a commit that stops moving is frozen)",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "isales_partition_last_counted_event_age_seconds",
            "Seconds since the Kafka timestamp of the last event counted",
            labels=labels,
        )
        now = time.time()
        for partition, log_end, next_to_count, committed in self._positions():
            label = [self.topic, str(partition)]
            uncounted.add_metric(label, max(0, log_end - next_to_count))
            uncommitted.add_metric(label, max(0, log_end - committed))
            committed_offset.add_metric(label, committed)
            last = self.last_counted.get(partition)
            if last is not None:
                age.add_metric(label, max(0.0, now - last.timestamp))
        yield from (uncounted, uncommitted, committed_offset, age)

    def _positions(self) -> list[tuple[int, int, int, int]]:
        """(partition, log end, next offset to count, committed offset) of each owned one."""
        if self.consumer is None:
            return []
        try:
            owned = [tp for tp in self.consumer.assignment() if tp.topic == self.topic]
            positions = []
            for tp in owned:
                log_end = self.consumer.highwater(tp)
                if log_end is None:
                    continue  # no fetch answered yet
                committed = self.consumer._committed_offset.get(tp) or 0
                last = self.last_counted.get(tp.partition)
                next_to_count = max(committed, last.offset + 1) if last else committed
                positions.append((tp.partition, log_end, next_to_count, committed))
            return positions
        except RuntimeError:  # the consumer's thread changed the assignment while we read it
            return []
