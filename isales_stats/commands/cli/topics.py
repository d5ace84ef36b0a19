"""``isales-stats topics``: create the Kafka topics the worker reads and writes."""

from __future__ import annotations

import argparse

from isales_stats.commands.cli.command import Subcommands, add_command
from isales_stats.core.settings import Settings

DESCRIPTION = """\
Create the call-events topic and its dead-letter topic when they are missing,
and print what was created; existing topics are left as they are. Every worker
does the same at start: run this once where workers may not create topics.

Reads the ISALES_KAFKA_* settings, ISALES_CALL_EVENTS_TOPIC,
ISALES_DEAD_LETTER_TOPIC, ISALES_CALL_EVENTS_PARTITIONS,
ISALES_TOPIC_REPLICATION_FACTOR and ISALES_CALL_EVENTS_RETENTION_HOURS.

Example:
  ISALES_KAFKA_URL=kafka://broker-1:9092 isales-stats topics
"""


def register(commands: Subcommands) -> None:
    add_command(
        commands,
        "topics",
        help="create the call-events and dead-letter topics",
        description=DESCRIPTION,
        run=run_topics,
    )


def run_topics(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.engine.topics import ensure_topics

    created = ensure_topics(settings)
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    return 0
