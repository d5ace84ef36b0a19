"""The Faust application: its broker, its topics, nothing else (agents live in agents.py)."""

from __future__ import annotations

import faust

from isales_stats.settings import Settings


def create_app(settings: Settings) -> faust.App:
    return faust.App(
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
        # Bigger fetches and buffers: the agent takes events in batches of worker_batch_size.
        broker_max_poll_records=settings.worker_batch_size,
        stream_buffer_maxsize=settings.worker_batch_size * 2,
        producer_acks=-1,
        broker_session_timeout=settings.worker_session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_seconds / 5),
        stream_wait_empty=False,
    )
