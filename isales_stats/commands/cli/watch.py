"""``isales-stats watch``: follow the statistics as they change (``commands/watching.py``)."""

from __future__ import annotations

import argparse

from isales_stats.commands.cli.client_options import (
    SIGNING,
    add_client_options,
    api_url,
    signing_keys,
)
from isales_stats.commands.cli.command import Subcommands, add_command
from isales_stats.core.settings import Settings

DESCRIPTION = f"""\
Subscribe to the API's push stream and print a line per change, until Ctrl-C:
a campaign's counters after it ("snapshot" when they stand for changes not
sent one by one, as at the start). Resumes by itself after a lost connection;
--after resumes after an event id printed before (with --json). Exit status 1
when the API refuses for good.

{SIGNING}
Examples:
  isales-stats watch --vdn 1
  isales-stats watch --vdn 1 --campaign 1001 --json
"""


def register(commands: Subcommands) -> None:
    watch = add_command(
        commands,
        "watch",
        help="follow the statistics as they change (push), a line per change, until Ctrl-C",
        description=DESCRIPTION,
        run=run_watch,
    )
    add_client_options(watch)
    watch.add_argument("--after", default=None, help="an event id: resume after it")
    watch.add_argument("--json", action="store_true", help="a JSON object per change")


def run_watch(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.watching import follow

    keys = signing_keys("watch", arguments, settings)
    if keys is None:
        return 2
    access_key, secret_key = keys
    return follow(
        api_url(arguments, settings),
        arguments.vdn,
        campaign_id=arguments.campaign,
        access_key=access_key,
        secret_key=secret_key,
        after=arguments.after,
        as_json=arguments.json,
    )
