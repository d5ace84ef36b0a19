"""The Kafka topics the engine reads and writes, created when missing."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from isales_stats.core.settings import Settings

DEAD_LETTER_PARTITIONS = 3


def ensure_topics(settings: Settings, replication: int = 1) -> list[str]:
    """Create the call-events and dead-letter topics unless they exist; return those created."""
    wanted = {
        settings.call_events_topic: settings.call_events_partitions,
        settings.dead_letter_topic: DEAD_LETTER_PARTITIONS,
    }
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        missing = [name for name in wanted if name not in set(admin.list_topics())]
        created = []
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, wanted[name], replication)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another worker won the race: just as good
        return created
    finally:
        admin.close()
