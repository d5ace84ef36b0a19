"""``isales-stats dead-letters``: read the dead-letter topic (``commands/dead_letters.py``)."""

from __future__ import annotations

import argparse

from isales_stats.commands.cli.command import Subcommands, add_command
from isales_stats.core.settings import Settings

DESCRIPTION = """\
Print the events the worker could not count, from the dead-letter topic: each
with the reason and category the worker gave (invalid, future, batch-conflict,
limit, campaign-released), where it came from, and the original event. Reads
the topic from its beginning to its end as of the start, then stops; it joins
no consumer group and commits nothing. --vdn and --campaign keep the letters
of a VDN or a campaign (an event that is not JSON is matched by its key).
Exit status 1, said in one line, when the topic cannot be read.

Reads the ISALES_KAFKA_* settings and ISALES_DEAD_LETTER_TOPIC.

Examples:
  isales-stats dead-letters
  isales-stats dead-letters --vdn 1 --campaign 1001 --json
"""


def register(commands: Subcommands) -> None:
    command = add_command(
        commands,
        "dead-letters",
        help="the events the worker set aside: reason, category, original event",
        description=DESCRIPTION,
        run=run_dead_letters,
    )
    command.add_argument("--vdn", type=int, default=None, help="only this VDN's letters")
    command.add_argument("--campaign", default=None, help="only this campaign's letters")
    command.add_argument(
        "--json", action="store_true", help="a JSON object per letter instead of a line"
    )


def run_dead_letters(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.dead_letters import print_dead_letters

    return print_dead_letters(settings, arguments.vdn, arguments.campaign, arguments.json)
