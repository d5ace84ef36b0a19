"""``isales-stats dead-letters``: what the worker set aside, and why.

The worker publishes each event it cannot count to the dead-letter topic
(ISALES_DEAD_LETTER_TOPIC) with its original key and bytes, and headers saying why
(``engine/pipeline.py``, ``DeadLetter.headers``). This reads the topic from its beginning to
the end it has when the command starts, with no consumer group (it commits nothing and moves
nobody's offsets), and prints each letter: its reason, its category and the original event.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from isales_stats.core.events import (
    DEAD_LETTER_CATEGORY,
    DEAD_LETTER_REASON,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
)
from isales_stats.core.kafka_connection import KafkaAccessRefused, client_options
from isales_stats.core.settings import Settings

# How long one poll waits for the records between the start and the end found at the start.
POLL_MS = 1_000


@dataclass(frozen=True)
class Letter:
    reason: str
    category: str
    source: str  # topic[partition]@offset of the original event
    key: bytes | None
    value: bytes | None
    event: Any  # the value as JSON, or None when it is not JSON

    @property
    def vdn_and_campaign(self) -> tuple[object, object]:
        """The event's vdnId and campaignId, else those of its key (``{vdnId}:{campaignId}``)."""
        if isinstance(self.event, dict):
            return self.event.get("vdnId"), self.event.get("campaignId")
        vdn, _, campaign = (self.key or b"").decode(errors="replace").partition(":")
        return (int(vdn) if vdn.isdigit() else None), (campaign or None)

    def as_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "category": self.category,
            "source": self.source,
            "key": _text(self.key),
            "event": self.event,
            "value": None if self.event is not None else _text(self.value),
        }

    def as_line(self) -> str:
        original = _text(self.value) if self.value is not None else "(no value)"
        return f"{self.source} [{self.category}] {self.reason}: {original}"


def print_dead_letters(
    settings: Settings, vdn_id: int | None, campaign_id: str | None, as_json: bool
) -> int:
    """Print the letters of the topic (of ``vdn_id`` and ``campaign_id`` when given); exit
    status 1, said in one line, when the topic cannot be read."""
    topic = settings.dead_letter_topic
    try:
        for letter in read_dead_letters(settings):
            vdn, campaign = letter.vdn_and_campaign
            if vdn_id is not None and vdn != vdn_id:
                continue
            if campaign_id is not None and campaign != campaign_id:
                continue
            print(json.dumps(letter.as_json(), ensure_ascii=False) if as_json else letter.as_line())
    except TopicMissing:
        print(
            f"isales-stats dead-letters: no topic {topic} (ISALES_DEAD_LETTER_TOPIC): no dead "
            "letter yet, or another topic is meant",
            file=sys.stderr,
        )
        return 1
    except (KafkaError, KafkaAccessRefused) as error:
        servers = ",".join(settings.kafka_bootstrap_servers)
        print(
            f"isales-stats dead-letters: cannot read {topic} from {servers} "
            f"(ISALES_KAFKA_URL): {error}",
            file=sys.stderr,
        )
        return 1
    return 0


class TopicMissing(LookupError):
    pass


def read_dead_letters(settings: Settings) -> Iterator[Letter]:
    """Every letter of the topic up to its end as of now, partition by partition."""
    consumer = KafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=POLL_MS,
    )
    try:
        topic = settings.dead_letter_topic
        if topic not in consumer.topics():  # asking for its partitions could create it
            raise TopicMissing(topic)
        partitions = [
            TopicPartition(topic, partition)
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions)
        for partition in partitions:
            yield from _read_partition(consumer, partition, ends[partition])
    finally:
        consumer.close()


def _read_partition(
    consumer: KafkaConsumer, partition: TopicPartition, end: int
) -> Iterator[Letter]:
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    while consumer.position(partition) < end:
        for records in consumer.poll(timeout_ms=POLL_MS).values():
            for record in records:
                if record.offset < end:
                    yield _letter(record)


def _letter(record: Any) -> Letter:
    headers = {name: value.decode(errors="replace") for name, value in record.headers or []}
    try:
        event = orjson.loads(record.value) if record.value is not None else None
    except orjson.JSONDecodeError:
        event = None
    source = (
        f"{headers.get(SOURCE_TOPIC, '?')}[{headers.get(SOURCE_PARTITION, '?')}]"
        f"@{headers.get(SOURCE_OFFSET, '?')}"
    )
    return Letter(
        reason=headers.get(DEAD_LETTER_REASON, "(no reason given)"),
        category=headers.get(DEAD_LETTER_CATEGORY, "?"),
        source=source,
        key=record.key,
        value=record.value,
        event=event,
    )


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode(errors="backslashreplace")
