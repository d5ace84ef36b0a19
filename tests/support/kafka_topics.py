"""A test's call-events topic: a stream produced onto it fast, read back to its end, and how
far the workers' consumer group has committed on it."""

from __future__ import annotations

import time
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from isales_stats.core.kafka_connection import client_options
from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from tests.support.streams import encoded


def publish(settings: Settings, stream: list[dict[str, Any]]) -> None:
    """Produce ``stream`` to the call-events topic, fast (big batches), acknowledged by all."""
    ensure_topics(settings)
    producer = KafkaProducer(
        **client_options(settings),
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
    )
    for key, value in encoded(stream):
        producer.send(settings.call_events_topic, key=key, value=value)
    producer.flush()
    producer.close()


def read_topic(settings: Settings, timeout: float = 20.0) -> list[tuple[bytes, dict[str, Any]]]:
    """Every (key, JSON value) on the call-events topic, partition by partition, in order."""
    consumer = KafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout * 1000),
    )
    try:
        partitions = [
            TopicPartition(settings.call_events_topic, number)
            for number in sorted(consumer.partitions_for_topic(settings.call_events_topic) or [])
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        messages: list[tuple[bytes, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError("the topic was not read to its end in time")
            for records in consumer.poll(timeout_ms=500).values():
                messages += [(record.key, orjson.loads(record.value)) for record in records]
        return messages
    finally:
        consumer.close()


def end_offsets(settings: Settings, topic: str | None = None) -> dict[TopicPartition, int]:
    """The offset after the last message of each partition of the call-events topic (or of
    ``topic``)."""
    consumer = KafkaConsumer(**client_options(settings))
    try:
        name = topic or settings.call_events_topic
        partitions = [
            TopicPartition(name, number)
            for number in consumer.partitions_for_topic(name)
            or range(settings.call_events_partitions)
        ]
        ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
        return ends
    finally:
        consumer.close()


def committed_offsets(settings: Settings) -> dict[TopicPartition, int]:
    """What the workers' consumer group has committed, by partition (empty: it never has)."""
    admin = KafkaAdminClient(**client_options(settings))
    try:
        group = admin.list_group_offsets(settings.worker_group)[settings.worker_group]
    finally:
        admin.close()
    return {partition: metadata.offset for partition, metadata in group.items()}


def uncommitted(settings: Settings) -> dict[TopicPartition, int]:
    """Partition -> messages the workers' group has not committed yet, for those behind."""
    ends = end_offsets(settings)
    committed = committed_offsets(settings)
    return {
        tp: end - committed.get(tp, 0) for tp, end in ends.items() if committed.get(tp, 0) < end
    }


def wait_until_committed(settings: Settings, timeout: float = 60.0) -> dict[TopicPartition, int]:
    """Wait until the workers' group has committed every partition up to its log end.

    Returns what is still uncommitted at the deadline (empty: everything). Faust commits every
    few seconds, so a fully counted stream is fully committed soon after; one that is not has
    a frozen commit (a consumer that will never move the group's offset on that partition).
    """
    deadline = time.monotonic() + timeout
    behind = uncommitted(settings)
    while behind and time.monotonic() < deadline:
        time.sleep(0.5)
        behind = uncommitted(settings)
    return behind


def read_dead_letters(settings: Settings, expected: int) -> list[Any]:
    """The first ``expected`` records of the dead-letter topic (fewer after 20 s of none)."""
    consumer = KafkaConsumer(
        settings.dead_letter_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=20_000,
    )
    letters = []
    for record in consumer:
        letters.append(record)
        if len(letters) == expected:
            break
    consumer.close()
    return letters
