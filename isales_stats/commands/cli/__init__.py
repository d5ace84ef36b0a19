"""The ``isales-stats`` command line: one module per command, and ``main`` to run them.

Each module of ``COMMANDS`` adds its command (its options, ``help``, ``description`` and
handler) in a ``register(commands)`` function, through ``command.add_command``; ``main`` builds
the parser from them, in their order (the order of ``isales-stats --help``), and runs the
handler the arguments chose. ``client_options`` holds what the API's client commands share.

To add a command: a module here with ``register`` and its handler (``topics`` is the smallest,
``query`` one that calls the API), its name in ``COMMANDS``, and a line in the commands table
of docs/operations.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from isales_stats.commands.cli import (
    api,
    campaigns,
    dead_letters,
    demo,
    export,
    notifier,
    publish,
    query,
    simulate,
    stack,
    topics,
    watch,
    webhooks,
    worker,
)
from isales_stats.commands.cli.command import Handler
from isales_stats.commands.cli.settings import read_settings
from isales_stats.commands.exit_status import EXIT_CANNOT_START

COMMANDS = (
    stack, worker, notifier, api, query, watch, export, topics, publish, simulate, campaigns,
    dead_letters, webhooks, demo,
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``isales-stats ARGUMENTS`` (``argv``, else the process's); its exit status."""
    arguments = build_parser().parse_args(argv)
    run: Handler = arguments.run
    settings = read_settings()  # None: malformed, said on stderr
    return run(arguments, settings) if settings is not None else EXIT_CANNOT_START


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isales-stats",
        description="Live outbound-campaign statistics: Kafka events -> Faust -> Redis -> HTTP.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser
