"""``isales-stats demo``: the whole product on the local stack (``commands/demo.py``)."""

from __future__ import annotations

import argparse

from isales_stats.commands.cli.command import Subcommands, add_command
from isales_stats.core.settings import Settings

DESCRIPTION = """\
Start the local stack (unless running), a worker, the API with a well-known
demo key and the live page, and simulated traffic that keeps flowing; once the
API serves statistics, print the URLs and commands to try. Ctrl-C stops
exactly what the demo started, the stack included when it was not running
before. Logs go to ISALES_STACK_DIR/demo.

Reads the settings of stack, worker and api (the API's keys are the demo's,
whatever ISALES_AUTH_KEYS says). Not for production: the demo key is
published.

Example:
  isales-stats demo
"""


def register(commands: Subcommands) -> None:
    add_command(
        commands,
        "demo",
        help="stack, worker, API and sample traffic, until Ctrl-C",
        description=DESCRIPTION,
        run=run_demo,
    )


def run_demo(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.demo import run_demo as run_whole_demo

    return run_whole_demo(settings)
