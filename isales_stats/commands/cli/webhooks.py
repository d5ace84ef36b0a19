"""``isales-stats webhooks add|list|remove|replay``: webhook subscriptions, through the API
(the Python client, signed as ``query`` signs), and dead letters sent again (``replay``,
which reads Redis as the notifier does)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from isales_stats.commands.cli.client_options import api_url, signing_keys
from isales_stats.commands.cli.command import Subcommands, add_command, add_command_group
from isales_stats.commands.exit_status import EXIT_CANNOT_START, EXIT_OK, EXIT_SOME_NOT_SENT
from isales_stats.core.settings import Settings

DESCRIPTION = """\
Webhook subscriptions of the key's VDNs (docs/notifications.md): add one (its
secret is printed once: keep it), list them, remove one, or replay the dead
letters (deliveries given up) with their notification ids.

Example:
  isales-stats webhooks add --url https://hooks.example.com/isales --vdn 7 --vdn 8
  isales-stats webhooks list
  isales-stats webhooks remove sub_0123456789abcdef01234567
  isales-stats webhooks replay --subscription sub_0123456789abcdef01234567
"""


def register(commands: Subcommands) -> None:
    group = add_command_group(
        commands, "webhooks", help="manage webhook subscriptions", description=DESCRIPTION
    )
    add = add_command(
        group, "add", help="subscribe an address", description=DESCRIPTION, run=run_add
    )
    add.add_argument("--url", required=True, help="https address receiving the notifications")
    add.add_argument("--vdn", type=int, action="append", required=True, help="a VDN (repeat)")
    add.add_argument("--kind", action="append", default=None, help="only this kind (repeat)")
    listing = add_command(
        group, "list", help="list the subscriptions", description=DESCRIPTION, run=run_list
    )
    remove = add_command(
        group, "remove", help="remove a subscription", description=DESCRIPTION, run=run_remove
    )
    remove.add_argument("subscription")
    for parser in (add, listing, remove):
        parser.add_argument("--url-api", dest="api", default=None, help="the API's address")
        parser.add_argument("--access-key", default=None, help="default: ISALES_CLIENT_ACCESS_KEY")
    replay = add_command(
        group, "replay", help="send dead letters again", description=DESCRIPTION, run=run_replay
    )
    replay.add_argument("--subscription", default=None, help="only this subscription's")


def _client(command: str, arguments: argparse.Namespace, settings: Settings) -> object | None:
    from isales_stats.client import StatisticsClient

    keys = signing_keys(f"webhooks {command}", arguments, settings)
    if keys is None:
        return None
    # ``--url`` is the subscribed address here; the API's is ``--url-api``.
    return StatisticsClient(api_url(argparse.Namespace(url=arguments.api), settings), *keys)


def _call(command: str, arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.client import StatisticsApiError, StatisticsClient

    client = _client(command, arguments, settings)
    if not isinstance(client, StatisticsClient):
        return EXIT_CANNOT_START
    with client:
        try:
            if command == "add":
                answer: object = client.create_webhook(arguments.url, arguments.vdn, arguments.kind)
            elif command == "list":
                answer = client.webhooks()
            else:
                client.delete_webhook(arguments.subscription)
                answer = {"removed": arguments.subscription}
        except StatisticsApiError as error:
            print(f"isales-stats webhooks {command}: {error}", file=sys.stderr)
            return EXIT_SOME_NOT_SENT
    print(json.dumps(answer, indent=2))
    return EXIT_OK


def run_add(arguments: argparse.Namespace, settings: Settings) -> int:
    return _call("add", arguments, settings)


def run_list(arguments: argparse.Namespace, settings: Settings) -> int:
    return _call("list", arguments, settings)


def run_remove(arguments: argparse.Namespace, settings: Settings) -> int:
    return _call("remove", arguments, settings)


def run_replay(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.engine.notifications.notifier import replay_dead_letters

    delivered, failed = asyncio.run(replay_dead_letters(settings, arguments.subscription))
    print(f"delivered {delivered}, still dead {failed}")
    return EXIT_OK if failed == 0 else EXIT_SOME_NOT_SENT
