"""``isales-stats worker``: one Faust worker counting call events (``engine/worker.py``)."""

from __future__ import annotations

import argparse

from isales_stats.commands.cli.command import Subcommands, add_command
from isales_stats.core.settings import Settings

DESCRIPTION = """\
Run one Faust worker: it consumes the call-events topic and counts every event
into Redis, until SIGTERM or Ctrl-C. Run several for more throughput: they
share the topic's partitions as one consumer group. At start it checks its
access to Redis and Kafka (a wrong password or CA is named, not retried) and
creates the topics when they are missing.

Reads the ISALES_KAFKA_* and ISALES_REDIS_* settings,
ISALES_CALL_EVENTS_TOPIC, ISALES_DEAD_LETTER_TOPIC, ISALES_WORKER_GROUP,
ISALES_WORKER_BATCH_SIZE, ISALES_WORKER_METRICS_PORT (Prometheus; 0: none),
ISALES_KEY_PREFIX and the time zones and campaign lifecycle settings
(docs/operations.md, "Configuration").

Example:
  ISALES_WORKER_METRICS_PORT=0 isales-stats worker --loglevel info
"""


def register(commands: Subcommands) -> None:
    worker = add_command(
        commands,
        "worker",
        help="run a Faust worker that counts call events",
        description=DESCRIPTION,
        run=run_worker,
    )
    worker.add_argument("--loglevel", default="warning")


def run_worker(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.engine.worker import run_worker as run_faust_worker

    return run_faust_worker(settings, loglevel=arguments.loglevel)
