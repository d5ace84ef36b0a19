"""What a command module needs to register itself: ``add_command`` and the handler's type.

Every command of ``isales-stats`` is added through ``add_command``, which takes the one-line
``help`` (listed by ``isales-stats --help``) and the ``description`` (shown by
``isales-stats COMMAND --help``) as required arguments, so no command goes without either.
Descriptions are printed as written (``RawDescriptionHelpFormatter``): they hold examples,
whose lines a rewrapping formatter would run together.

Command modules import the work they hand over to inside their handler, not at the top: every
run of ``isales-stats`` builds the whole parser, and ``query`` or ``--help`` should not wait
for Faust, Kafka's client or the API to be imported.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from isales_stats.core.settings import Settings

Handler: TypeAlias = Callable[[argparse.Namespace, Settings], int]
"""Runs a command with its parsed options and the settings; returns the exit status."""

# What ``add_subparsers`` returns: the commands (or a group's actions) to add to. Generic in
# typeshed only; at run time argparse's class takes no parameter.
if TYPE_CHECKING:
    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subcommands = argparse._SubParsersAction


def add_command(
    commands: Subcommands, name: str, *, help: str, description: str, run: Handler
) -> argparse.ArgumentParser:
    """Add the command ``name``, run by ``run``; its parser, for the options."""
    parser = commands.add_parser(
        name,
        help=help,
        description=description.strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=run)
    return parser


def add_command_group(
    commands: Subcommands, name: str, *, help: str, description: str
) -> Subcommands:
    """Add ``name ACTION ...`` (as ``campaigns list``); the group, to add its actions to."""
    group = commands.add_parser(
        name,
        help=help,
        description=description.strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return group.add_subparsers(required=True, metavar="ACTION")
