"""The Kafka topics the engine reads and writes, created when missing."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from isales_stats.core.kafka_connection import client_options
from isales_stats.core.settings import Settings

DEAD_LETTER_PARTITIONS = 3


def ensure_topics(settings: Settings, replication: int | None = None) -> list[str]:
    """Create the call-events and dead-letter topics unless they exist; return those created.

    Replicas from ``settings.topic_replication_factor`` unless ``replication`` is given, with
    ``min.insync.replicas`` at min(2, replicas): with acks=all a write then survives one lost
    broker. The call events keep ``settings.call_events_retention_hours``. A topic that exists
    already is left as it is (an operator's settings win).
    """
    replicas = replication or settings.topic_replication_factor
    durability = {"min.insync.replicas": str(min(2, replicas))}
    retention = {"retention.ms": str(settings.call_events_retention_hours * 3_600_000)}
    wanted = {
        settings.call_events_topic: (settings.call_events_partitions, durability | retention),
        settings.dead_letter_topic: (DEAD_LETTER_PARTITIONS, durability),
    }
    admin = KafkaAdminClient(**client_options(settings))
    try:
        missing = [name for name in wanted if name not in set(admin.list_topics())]
        created = []
        for name in missing:
            partitions, configs = wanted[name]
            try:
                admin.create_topics([NewTopic(name, partitions, replicas, topic_configs=configs)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another worker won the race: just as good
        return created
    finally:
        admin.close()
