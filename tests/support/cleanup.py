"""Removing what a test run wrote: its Redis keys (by prefix) and its Kafka topics.

Used by the session's fixtures (tests/conftest.py) and by the benchmarks, which share the
stack with the tests and must leave it as they found it.
"""

from __future__ import annotations

import redis
from kafka.admin import KafkaAdminClient

from isales_stats.core.settings import Settings


def delete_keys(redis_url: str, prefix: str) -> None:
    """Every key under ``prefix:``, in batches of 1,000 (SCAN, never KEYS)."""
    with redis.Redis.from_url(redis_url) as client:
        batch = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(batch), 1000):
            client.delete(*batch[start : start + 1000])


def delete_topics(settings: Settings, names: list[str]) -> None:
    """Delete these topics, those that exist: not every test or run creates all it was given."""
    if not names:
        return
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        admin.delete_topics(names, raise_errors=False)  # "unknown topic" answers are expected
    finally:
        admin.close()
