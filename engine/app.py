"""The Faust application: its broker and settings, nothing else (agents live in agents.py)."""

from __future__ import annotations

from faust.auth import Credentials, SASLCredentials, SSLCredentials

from isales_stats.core.kafka_connection import ssl_context, uses_sasl
from isales_stats.core.settings import Settings
from isales_stats.engine.batch_delivery import CountingApp


def broker_credentials(settings: Settings) -> Credentials | None:
    """ISALES_KAFKA_* as Faust's credentials, which it hands to every aiokafka client it makes
    (the consumer, the dead-letter producer, its admin requests), with the SSL context that
    kafka-python's clients use too (core/kafka_connection.py)."""
    context = ssl_context(settings)
    if uses_sasl(settings):
        return SASLCredentials(
            username=settings.kafka_username,
            password=settings.kafka_password_value(),
            ssl_context=context,  # SASL_SSL with one, SASL_PLAINTEXT without
            mechanism=settings.kafka_sasl_mechanism,
        )
    return SSLCredentials(context) if context is not None else None


def create_app(settings: Settings) -> CountingApp:
    return CountingApp(
        settings.worker_group,
        broker=settings.kafka_url,
        broker_credentials=broker_credentials(settings),
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
