"""The topics the project creates: partitions, replicas, durability and retention as settings say
(engine/topics.py; docs/operations.md, "Topics")."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from isales_stats.core.settings import Settings
from isales_stats.engine.topics import DEAD_LETTER_PARTITIONS, ensure_topics

pytestmark = pytest.mark.stack


def topic_configs(settings: Settings, topic: str) -> dict[str, Any]:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        partitions = admin.describe_topics([topic])[0]["partitions"]
    finally:
        admin.close()
    configs = described["topic"][topic]
    return {
        "partitions": len(partitions),
        "replicas": {len(partition["replica_nodes"]) for partition in partitions},
        **{name: entry["value"] for name, entry in configs.items()},
    }


def test_the_topics_are_created_with_the_settings_retention_and_durability(
    test_settings: Settings,
) -> None:
    settings = test_settings.model_copy(update={"call_events_retention_hours": 36})
    assert set(ensure_topics(settings)) == {settings.call_events_topic, settings.dead_letter_topic}
    events = topic_configs(settings, settings.call_events_topic)
    assert events["partitions"] == settings.call_events_partitions
    assert events["replicas"] == {1}  # the local stack's one broker
    assert events["retention.ms"] == str(36 * 3_600_000)
    assert events["min.insync.replicas"] == "1"
    dead_letters = topic_configs(settings, settings.dead_letter_topic)
    assert dead_letters["partitions"] == DEAD_LETTER_PARTITIONS
    assert "retention.ms" not in dead_letters  # the broker's default
    # A second call changes nothing: an operator's own settings of an existing topic win.
    assert ensure_topics(settings.model_copy(update={"call_events_retention_hours": 1})) == []
    assert topic_configs(settings, settings.call_events_topic)["retention.ms"] == str(
        36 * 3_600_000
    )
