"""The Python SDK for producers: publish call events to Kafka with kafka-python.

Every event is checked against the contract before it is sent; an invalid one raises
``InvalidEvent`` naming the field, and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import orjson
from kafka import KafkaProducer

from engine.events import CallEvent, event_from_json
from isales_stats.settings import Settings


class EventPublisher:
    """An idempotent, ``acks="all"`` producer of call events, keyed ``{vdnId}:{campaignId}``."""

    def __init__(self, settings: Settings, **producer_options: Any) -> None:
        self.topic = settings.call_events_topic
        options: dict[str, Any] = {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "acks": "all",
            "enable_idempotence": True,
            # Fill batches for a few ms: much higher throughput for a tiny delay.
            "linger_ms": 5,
            "batch_size": 256 * 1024,
        }
        options.update(producer_options)
        self._producer = KafkaProducer(**options)

    def publish(self, event: CallEvent | Mapping[str, Any]) -> Any:
        """Validate and send one event; returns kafka-python's future of the send."""
        if not isinstance(event, CallEvent):
            event = event_from_json(dict(event))
        return self._producer.send(
            self.topic, key=event.kafka_key, value=orjson.dumps(event.to_json())
        )

    def publish_raw(self, value: bytes, key: bytes | None = None) -> Any:
        """Send bytes unchecked: only for tests and tools that must produce bad input."""
        return self._producer.send(self.topic, key=key, value=value)

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float | None = None) -> None:
        self._producer.close(timeout=timeout)

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.flush()
        self.close()
