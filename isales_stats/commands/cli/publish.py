"""``isales-stats publish FILE``: send call events to Kafka (``commands/publish.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from isales_stats.commands.cli.command import Subcommands, add_command
from isales_stats.core.settings import Settings

DESCRIPTION = """\
Publish call events from a file of JSON lines or one JSON array (- reads
stdin) to the call-events topic. Every event is validated first; the invalid
ones and those Kafka did not acknowledge go to the rejects file with the
reason. Exit status 0 when all were sent, 1 when some were not, 2 when the
input or Kafka cannot be reached.

Reads the ISALES_KAFKA_* settings, ISALES_CALL_EVENTS_TOPIC and
ISALES_FUTURE_TOLERANCE_SECONDS (how far ahead an event may be stamped); the
events' contract is docs/events.md.

Examples:
  isales-stats publish events.jsonl
  isales-stats simulate --output - | isales-stats publish -
"""


def register(commands: Subcommands) -> None:
    publish = add_command(
        commands,
        "publish",
        help="publish call events from a file (JSON lines or a JSON array; - for stdin)",
        description=DESCRIPTION,
        run=run_publish,
    )
    publish.add_argument("file", help="the events: JSON lines or one JSON array; - reads stdin")
    publish.add_argument(
        "--rejects",
        type=Path,
        default=None,
        help="where events not sent go, with the reason, as JSON lines "
        "(default: FILE.rejected.jsonl; rejected.jsonl for stdin)",
    )
    publish.add_argument(
        "--timeout", type=float, default=60.0, help="seconds Kafka may take to answer (60)"
    )


def run_publish(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.publish import publish_file

    rejects = arguments.rejects or Path(
        "rejected.jsonl" if arguments.file == "-" else f"{arguments.file}.rejected.jsonl"
    )
    return publish_file(settings, arguments.file, rejects, arguments.timeout)
