"""``isales-stats export``: the statistics, or the history, into a CSV or NDJSON file.

The API streams the file (docs/api.md, "Exports"); the client writes it as it comes, under a
``.part`` name until the transfer is complete (``StatisticsClient.export``), so a file with the
final name is always whole. On a terminal a line counts the rows so far; elsewhere nothing is
said unless something fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from isales_stats.commands.cli.client_options import (
    SIGNING,
    add_client_options,
    add_day_range_options,
    api_url,
    signing_keys,
)
from isales_stats.commands.cli.command import Subcommands, add_command
from isales_stats.core.interface import EXPORT_FORMATS
from isales_stats.core.settings import Settings

DESCRIPTION = f"""\
Download the statistics of a VDN's campaigns (a row per campaign and per
batch), or with --history their history (a row per campaign and day, or hour
with --hourly, over any range the retention keeps), as a CSV or NDJSON file.

The file is written as FILE.part and renamed FILE once the API has sent all of
it: a transfer cut short leaves nothing. Without --output, or with a directory,
the file is named as the API names it, in the current directory or that one.
On a terminal, a line counts the rows so far. Exit status 1 when the API
refuses or the transfer is cut short, 2 for options that do not go together.

{SIGNING}
Examples:
  isales-stats export --vdn 1
  isales-stats export --vdn 1 --history --hourly --from 2026-11-01 --to 2026-12-06
  isales-stats export --vdn 1 --campaign 1001 --history --format ndjson -o 1001.ndjson
"""


def register(commands: Subcommands) -> None:
    export = add_command(
        commands,
        "export",
        help="download the statistics or their history as a CSV or NDJSON file",
        description=DESCRIPTION,
        run=run_export,
    )
    add_client_options(export)
    export.add_argument("--batch", default=None, help="only this batch (needs --campaign)")
    export.add_argument(
        "--history", action="store_true", help="the history per day (per hour with --hourly)"
    )
    export.add_argument("--hourly", action="store_true", help="with --history: per hour")
    add_day_range_options(export, "--history")
    export.add_argument(
        "--format", choices=EXPORT_FORMATS, default=EXPORT_FORMATS[0], help="default: csv"
    )
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="the file, or a directory for the API's file name (default: the current one)",
    )


def run_export(arguments: argparse.Namespace, settings: Settings) -> int:
    import httpx

    from isales_stats.client import IncompleteExport, StatisticsApiError, StatisticsClient
    from isales_stats.commands.progress import LiveLine

    keys = signing_keys("export", arguments, settings)
    if keys is None:
        return 2
    misuse = export_misuse(arguments)
    if misuse:
        print(f"isales-stats export: {misuse}", file=sys.stderr)
        return 2
    access_key, secret_key = keys
    url = api_url(arguments, settings)
    line = LiveLine(sys.stderr) if sys.stderr.isatty() else None
    what = "history" if arguments.history else "statistics"

    def show(rows: int, size: int) -> None:
        if line is not None:
            line.update(lambda: f"exporting the {what}: {rows:,} rows, {_megabytes(size)}")

    # The stream may pause between parts while the API reads: a minute without a byte is a
    # hung transfer, not a slow one.
    with StatisticsClient(url, access_key, secret_key, timeout=60.0) as client:
        try:
            exported = client.export(
                arguments.vdn, arguments.output, history=arguments.history,
                campaign_id=arguments.campaign, batch_id=arguments.batch, start=arguments.start,
                end=arguments.end, interval="hour" if arguments.hourly else "day",
                export_format=arguments.format, progress=show,
            )  # fmt: skip
        except (StatisticsApiError, IncompleteExport) as error:
            print(f"isales-stats export: {error}", file=sys.stderr)
            return 1
        except httpx.HTTPError as error:
            print(f"isales-stats export: {url}: {error}", file=sys.stderr)
            return 1
    if line is not None:
        line.finish(
            f"exported the {what}: {exported.rows:,} rows, {_megabytes(exported.size)} "
            f"in {exported.path}"
        )
    return 0


def export_misuse(arguments: argparse.Namespace) -> str | None:
    """Options that the export would drop without a word, named (None: none)."""
    if arguments.hourly and not arguments.history:
        return "--hourly goes with --history"
    if (arguments.start or arguments.end) and not arguments.history:
        return "--from and --to go with --history"
    return None


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"
