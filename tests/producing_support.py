"""Helpers of the producer tests: read back what landed on a topic, run the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from isales_stats.core.settings import Settings

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "engine" / "call-event.schema.json"


def read_topic(settings: Settings, timeout: float = 20.0) -> list[tuple[bytes, dict[str, Any]]]:
    """Every (key, JSON value) on the call-events topic, partition by partition, in order."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
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


def run_cli(
    settings: Settings, *arguments: str, stdin: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``isales-stats ARGUMENTS`` in a child process with ``settings`` as its environment."""
    environment = {**os.environ, **settings.as_environment()}
    return subprocess.run(
        [sys.executable, "-m", "isales_stats", *arguments],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )
