"""``isales-stats query``: call the statistics API, signed, and print the answer.

One read per call: the statistics by default, or the read its flag chooses (``--fails``,
``--history``, ``--progress``, ``--abandon-rate``, ``--pacing``). A new read is a flag in the
``reads`` group of ``register``, a line in the description, a branch in ``build_read_request`` (a
``StatisticsClient.build_..._request``), and a rule in ``query_misuse`` for each option it does
not take.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from isales_stats.commands.cli.client_options import (
    SIGNING,
    add_client_options,
    add_day_range_options,
    api_url,
    signing_keys,
)
from isales_stats.commands.cli.command import Subcommands, add_command
from isales_stats.core.settings import Settings

if TYPE_CHECKING:
    import httpx

    from isales_stats.client import StatisticsClient

DESCRIPTION = f"""\
Call the statistics API once and print its answer as JSON (exit status 1 when
it is not HTTP 200 or the API cannot be reached, 2 for options that do not go
together).

  (no flag)   the statistics of the VDN's campaigns (or of --campaign, --batch)
  --fails     the campaign's failed calls by failCode, per day
  --history   the campaign's or batch's statistics per day, or per hour with
              --hourly
  --progress  the campaign's calls, connects and finished records per minute,
              over the last --minutes (default 60)
  --abandon-rate
              abandoned calls against the VDN's limit, today, over the
              rolling 24 hours and 30 days, and over each scope's life, of
              the VDN's campaigns (or of --campaign, --batch); over the live
              calls, or over every call with --basis all
  --pacing    records finished and left, calls and records per minute,
              state and ETA of the VDN's campaigns (or of --campaign, --batch)

--fails and --history read the days from --from to --to (default: today).

With --curl it prints a signed curl command instead of calling.

{SIGNING}
Examples:
  isales-stats query --vdn 1 --campaign 1001
  isales-stats query --vdn 1 --campaign 1001 --history --hourly
  isales-stats query --vdn 1 --campaign 1001 --fails --from 2025-01-01 --curl
  isales-stats query --vdn 1 --campaign 1001 --progress --minutes 15
  isales-stats query --vdn 1 --abandon-rate --basis all
  isales-stats query --vdn 1 --campaign 1001 --pacing
"""


def register(commands: Subcommands) -> None:
    query = add_command(
        commands,
        "query",
        help="call the statistics API, signed, and print the answer",
        description=DESCRIPTION,
        run=run_query,
    )
    add_client_options(query)
    query.add_argument("--batch", default=None, help="only this batch (needs --campaign)")
    query.add_argument(
        "--curl", action="store_true", help="print a signed curl command instead of calling"
    )
    reads = query.add_mutually_exclusive_group()
    reads.add_argument(
        "--fails",
        action="store_true",
        help="failcategorystatistics: the campaign's failed calls by failCode, per day",
    )
    reads.add_argument(
        "--history",
        action="store_true",
        help="the campaign's (or batch's) statistics per day, or per hour with --hourly",
    )
    reads.add_argument(
        "--progress",
        action="store_true",
        help="the campaign's calls, connects and finished records per minute",
    )
    reads.add_argument(
        "--abandon-rate",
        action="store_true",
        help="abandoned calls against the VDN's limit, by window (of --campaign, --batch)",
    )
    reads.add_argument(
        "--pacing",
        action="store_true",
        help="records done and left, paces, state and ETA (of --campaign, --batch)",
    )
    add_day_range_options(query, "--fails or --history")
    query.add_argument("--hourly", action="store_true", help="with --history: per hour")
    query.add_argument(
        "--basis",
        choices=("live", "all"),
        default=None,
        help="with --abandon-rate: over the live calls (the default) or over all calls",
    )
    query.add_argument(
        "--minutes",
        type=int,
        default=None,
        help="with --progress: how many minutes back (default 60, at most 1440)",
    )


def run_query(arguments: argparse.Namespace, settings: Settings) -> int:
    import httpx

    from isales_stats.client import StatisticsClient

    keys = signing_keys("query", arguments, settings)
    if keys is None:
        return 2
    access_key, secret_key = keys
    misuse = query_misuse(arguments)
    if misuse:
        print(f"isales-stats query: {misuse}", file=sys.stderr)
        return 2
    url = api_url(arguments, settings)
    with StatisticsClient(url, access_key, secret_key) as client:
        request = build_read_request(client, arguments)
        if arguments.curl:
            print(client.curl_command(arguments.vdn, request=request))
            return 0
        try:
            response = client.send(request)
        except httpx.HTTPError as error:
            print(f"isales-stats query: {url}: {error}", file=sys.stderr)
            return 1
    try:
        print(json.dumps(response.json(), indent=2, ensure_ascii=False))
    except ValueError:
        print(response.text)
    if response.status_code != 200:
        print(f"HTTP {response.status_code}", file=sys.stderr)
        return 1
    return 0


def build_read_request(client: StatisticsClient, arguments: argparse.Namespace) -> httpx.Request:
    """The request of the read the options choose (the statistics without a flag)."""
    if arguments.fails:
        return client.build_fail_category_request(
            arguments.vdn, arguments.campaign or "", arguments.start, arguments.end
        )
    if arguments.history:
        return client.build_history_request(
            arguments.vdn, arguments.campaign or "", arguments.batch, arguments.start,
            arguments.end, "hour" if arguments.hourly else "day",
        )  # fmt: skip
    if arguments.progress:
        return client.build_progress_request(
            arguments.vdn, arguments.campaign or "", arguments.minutes
        )
    if arguments.abandon_rate:
        return client.build_abandon_rate_request(
            arguments.vdn, arguments.campaign, arguments.batch, arguments.basis or "live"
        )
    if arguments.pacing:
        return client.build_pacing_request(arguments.vdn, arguments.campaign, arguments.batch)
    return client.build_request(arguments.vdn, arguments.campaign, arguments.batch)


def query_misuse(arguments: argparse.Namespace) -> str | None:
    """Options that the chosen read would drop without a word, named (None: none)."""
    if arguments.fails and arguments.batch is not None:
        return "--fails reads a campaign's failures: --batch has no meaning there"
    if arguments.progress and arguments.batch is not None:
        return "--progress reads a campaign's minutes: --batch has no meaning there"
    if arguments.minutes is not None and not arguments.progress:
        return "--minutes goes with --progress"
    if arguments.basis is not None and not arguments.abandon_rate:
        return "--basis goes with --abandon-rate"
    if arguments.hourly and not arguments.history:
        return "--hourly goes with --history"
    if (arguments.start or arguments.end) and not (arguments.fails or arguments.history):
        return "--from and --to go with --fails or --history"
    return None
