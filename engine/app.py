"""The Faust application: its broker and settings, nothing else (agents live in agents.py)."""

from __future__ import annotations

from isales_stats.core.settings import Settings
from isales_stats.engine.batch_delivery import CountingApp


def create_app(settings: Settings) -> CountingApp:
    return CountingApp(
        settings.worker_group,
        broker=settings.kafka_url,
        # No Faust tables: the state lives in Redis, so no changelog topics and no RocksDB.
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        # The assignor's leader topic only serves Faust tables, which we do not use.
        topic_disable_leader=True,
        topic_partitions=settings.call_events_partitions,
        consumer_auto_offset_reset="earliest",
        # One fetch is one counting batch (engine/batch_delivery.py): this bounds its size.
        broker_max_poll_records=settings.worker_batch_size,
        producer_acks=-1,
        broker_session_timeout=settings.worker_session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_seconds / 5),
        stream_wait_empty=False,
    )
