"""``isales-stats stack up | down | status``: the local Kafka and Redis (``commands/stack/``)."""

from __future__ import annotations

import argparse
import sys
import time

from isales_stats.commands.cli.command import Subcommands, add_command
from isales_stats.core.settings import Settings

DESCRIPTION = """\
The local stack: a real Kafka broker (KRaft) and a real Redis on 127.0.0.1,
for development, the tests and the demo.

  up      start what is not running (idempotent); the first time, installs
          redis-server with apt-get and fetches Kafka's jars from Maven Central
  down    stop what `up` started, and nothing else
  status  each service and whether it answers (exit status 3 when one does not)

Reads ISALES_STACK_DIR (pid files, data and logs; default
~/.cache/isales-stats), ISALES_KAFKA_URL and ISALES_REDIS_URL (their ports)
and ISALES_KAFKA_VERSION.

Example:
  isales-stats stack up && isales-stats stack status
"""


def register(commands: Subcommands) -> None:
    stack = add_command(
        commands,
        "stack",
        help="the local Kafka and Redis (up | down | status)",
        description=DESCRIPTION,
        run=run_stack,
    )
    stack.add_argument("action", choices=["up", "down", "status"])


def run_stack(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.stack import Stack, StackError

    stack = Stack(settings)
    if arguments.action == "up":
        began = time.monotonic()
        try:
            report = stack.up()
        except StackError as error:
            print(f"stack up failed: {error}", file=sys.stderr)
            return 1
        for service in ("redis", "kafka"):
            verb = "started" if service in report.started else "already running"
            print(f"{service}: {verb}")
        print(f"ready in {time.monotonic() - began:.1f} s")
        for status in report.statuses:
            print(status.describe())
        return 0
    if arguments.action == "down":
        stopped = stack.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing (no process of ours ran)"))
        return 0
    statuses = stack.status()
    for status in statuses:
        print(status.describe())
    return 0 if all(status.answering for status in statuses) else 3
