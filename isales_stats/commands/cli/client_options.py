"""What the API's client commands (``query``, ``watch``, ``export``) share: what to read,
where, signed how.

A new command that talks to the API adds these options with ``add_client_options`` and reads
them back with ``api_url`` and ``signing_keys``, so every client command spells them alike; one
that reads a range of days adds ``--from`` and ``--to`` with ``add_day_range_options``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

from isales_stats.core.events import MAX_VDN_ID, MIN_VDN_ID
from isales_stats.core.settings import Settings

SIGNING = """\
Signs with ISALES_CLIENT_ACCESS_KEY (or --access-key) and
ISALES_CLIENT_SECRET_KEY; without keys the request goes unsigned (an API with
auth off). Calls --url, else http://ISALES_API_HOST:ISALES_API_PORT.
"""


def add_client_options(command: argparse.ArgumentParser) -> None:
    """--vdn, --campaign, --url and --access-key."""
    command.add_argument(
        "--vdn", type=int, required=True, help=f"the VDN ({MIN_VDN_ID}..{MAX_VDN_ID})"
    )
    command.add_argument("--campaign", default=None, help="only this campaign")
    command.add_argument("--url", default=None, help="the API (default: ISALES_API_HOST/PORT)")
    command.add_argument("--access-key", default=None, help="default: ISALES_CLIENT_ACCESS_KEY")


def add_day_range_options(command: argparse.ArgumentParser, goes_with: str) -> None:
    """--from and --to (``start`` and ``end``, dates): the days read, for the reads
    ``goes_with`` names (neither: today)."""
    for flag, dest, which in (("--from", "start", "first"), ("--to", "end", "last")):
        command.add_argument(
            flag,
            dest=dest,
            type=date.fromisoformat,
            default=None,
            help=f"with {goes_with}: the {which} day, YYYY-MM-DD (default: today)",
        )


def api_url(arguments: argparse.Namespace, settings: Settings) -> str:
    """The API's base URL: --url, else the one the settings name."""
    return str(arguments.url or f"http://{settings.api_host}:{settings.api_port}")


def signing_keys(
    command: str, arguments: argparse.Namespace, settings: Settings
) -> tuple[str | None, str | None] | None:
    """The AK and SK a client command signs with (both None: unsigned, said on stderr); None,
    said on stderr, when only one of them is given."""
    access_key = arguments.access_key or settings.client_access_key or None
    secret_key = settings.client_secret_key.get_secret_value() or None
    if bool(access_key) != bool(secret_key):
        print(
            f"isales-stats {command}: give both an access key (ISALES_CLIENT_ACCESS_KEY or "
            "--access-key) and ISALES_CLIENT_SECRET_KEY, or neither",
            file=sys.stderr,
        )
        return None
    if access_key is None:
        # Said, so that a 401 from an API with auth on is not a puzzle.
        print(
            f"isales-stats {command}: sent unsigned: no ISALES_CLIENT_ACCESS_KEY/"
            "ISALES_CLIENT_SECRET_KEY (an API with auth on answers 401)",
            file=sys.stderr,
        )
    return access_key, secret_key
