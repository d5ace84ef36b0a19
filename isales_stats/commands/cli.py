"""The ``isales-stats`` command: stack, worker, api and the producer tools."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from isales_stats.core.events import MAX_VDN_ID, MIN_VDN_ID
from isales_stats.core.settings import Settings, get_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    arguments = parser.parse_args(argv)
    command: Callable[[argparse.Namespace, Settings], int] = arguments.run
    return command(arguments, get_settings())


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isales-stats",
        description="Live outbound-campaign statistics: Kafka events -> Faust -> Redis -> HTTP.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    stack = commands.add_parser("stack", help="the local Kafka and Redis (up | down | status)")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.set_defaults(run=_stack)

    worker = commands.add_parser("worker", help="run a Faust worker that counts call events")
    worker.add_argument("--loglevel", default="warning")
    worker.set_defaults(run=_worker)

    api = commands.add_parser("api", help="serve the statistics API with uvicorn")
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)
    api.add_argument(
        "--operations-port",
        type=int,
        default=None,
        help="the port of /metrics, /docs and /openapi.json (ISALES_OPERATIONS_PORT; 0: none)",
    )
    api.set_defaults(run=_api)

    query = commands.add_parser(
        "query",
        help="call the statistics API, signed, and print the answer",
        description="Signs with ISALES_CLIENT_ACCESS_KEY and ISALES_CLIENT_SECRET_KEY (or "
        "--access-key); without keys the request goes unsigned (an API with auth off).",
    )
    _add_client_options(query)
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
    query.add_argument(
        "--from",
        dest="start",
        type=date.fromisoformat,
        default=None,
        help="with --fails or --history: the first day, YYYY-MM-DD",
    )
    query.add_argument(
        "--to",
        dest="end",
        type=date.fromisoformat,
        default=None,
        help="with --fails or --history: the last day, YYYY-MM-DD",
    )
    query.add_argument("--hourly", action="store_true", help="with --history: per hour")
    query.set_defaults(run=_query)

    watch = commands.add_parser(
        "watch",
        help="follow the statistics as they change (push), a line per change, until Ctrl-C",
        description="Signs like query. Resumes by itself after a lost connection; --after "
        "resumes after an event id printed before (with --json).",
    )
    _add_client_options(watch)
    watch.add_argument("--after", default=None, help="an event id: resume after it")
    watch.add_argument("--json", action="store_true", help="a JSON object per change")
    watch.set_defaults(run=_watch)

    topics = commands.add_parser("topics", help="create the call-events and dead-letter topics")
    topics.set_defaults(run=_topics)

    _add_producer_commands(commands)
    _add_campaign_commands(commands)

    demo = commands.add_parser("demo", help="stack, worker, API and sample traffic, until Ctrl-C")
    demo.set_defaults(run=_demo)
    return parser


def _stack(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.stack import Stack, StackError

    stack = Stack(settings)
    if arguments.action == "up":
        began = time.monotonic()
        try:
            report = stack.up()
        except StackError as error:
            print(f"stack up failed: {error}", file=sys.stderr)
            return 1
        for service in ("redis", "kafka"):
            verb = "started" if service in report.started else "already running"
            print(f"{service}: {verb}")
        print(f"ready in {time.monotonic() - began:.1f} s")
        for status in report.statuses:
            print(status.describe())
        return 0
    if arguments.action == "down":
        stopped = stack.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing (no process of ours ran)"))
        return 0
    statuses = stack.status()
    for status in statuses:
        print(status.describe())
    return 0 if all(status.answering for status in statuses) else 3


def _worker(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.engine.worker import run_worker

    return run_worker(settings, loglevel=arguments.loglevel)


def _api(arguments: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from isales_stats.api.auth import AuthConfigurationError
    from isales_stats.api.main import create_app
    from isales_stats.api.runtime import tune_garbage_collector
    from isales_stats.api.server import serve

    if arguments.operations_port is not None:
        settings = settings.model_copy(update={"operations_port": arguments.operations_port})
    try:
        # Built here so that a refusal to start is a message, not uvicorn's traceback.
        app = create_app(settings)
    except AuthConfigurationError as error:
        print(f"isales-stats api: refusing to start: {error}", file=sys.stderr)
        return 2
    # Everything the server needs is imported now: freeze it out of the collector's work.
    tune_garbage_collector()
    host = arguments.host or settings.api_host
    asyncio.run(serve(app, settings, host, arguments.port or settings.api_port))
    return 0


def _query(arguments: argparse.Namespace, settings: Settings) -> int:
    import httpx

    from isales_stats.client import StatisticsClient

    keys = _signing_keys("query", arguments, settings)
    if keys is None:
        return 2
    access_key, secret_key = keys
    misuse = _query_misuse(arguments)
    if misuse:
        print(f"isales-stats query: {misuse}", file=sys.stderr)
        return 2
    url = _api_url(arguments, settings)
    with StatisticsClient(url, access_key, secret_key) as client:
        if arguments.fails:
            request = client.build_fail_category_request(
                arguments.vdn, arguments.campaign or "", arguments.start, arguments.end
            )
        elif arguments.history:
            request = client.build_history_request(
                arguments.vdn, arguments.campaign or "", arguments.batch, arguments.start,
                arguments.end, "hour" if arguments.hourly else "day",
            )  # fmt: skip
        else:
            request = client.build_request(arguments.vdn, arguments.campaign, arguments.batch)
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


def _watch(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.watching import follow

    keys = _signing_keys("watch", arguments, settings)
    if keys is None:
        return 2
    access_key, secret_key = keys
    return follow(
        _api_url(arguments, settings),
        arguments.vdn,
        campaign_id=arguments.campaign,
        access_key=access_key,
        secret_key=secret_key,
        after=arguments.after,
        as_json=arguments.json,
    )


def _add_client_options(command: argparse.ArgumentParser) -> None:
    """What the API's client commands (query, watch) share: what to read, where, signed how."""
    command.add_argument(
        "--vdn", type=int, required=True, help=f"the VDN ({MIN_VDN_ID}..{MAX_VDN_ID})"
    )
    command.add_argument("--campaign", default=None, help="only this campaign")
    command.add_argument("--url", default=None, help="the API (default: ISALES_API_HOST/PORT)")
    command.add_argument("--access-key", default=None, help="default: ISALES_CLIENT_ACCESS_KEY")


def _signing_keys(
    command: str, arguments: argparse.Namespace, settings: Settings
) -> tuple[str | None, str | None] | None:
    """The AK and SK a client command signs with (both None: unsigned); None, said on stderr,
    when only one of them is given."""
    access_key = arguments.access_key or settings.client_access_key or None
    secret_key = settings.client_secret_key.get_secret_value() or None
    if bool(access_key) != bool(secret_key):
        print(
            f"isales-stats {command}: give both an access key (ISALES_CLIENT_ACCESS_KEY or "
            "--access-key) and ISALES_CLIENT_SECRET_KEY, or neither",
            file=sys.stderr,
        )
        return None
    return access_key, secret_key


def _api_url(arguments: argparse.Namespace, settings: Settings) -> str:
    return str(arguments.url or f"http://{settings.api_host}:{settings.api_port}")


def _query_misuse(arguments: argparse.Namespace) -> str | None:
    """Options that the chosen read would drop without a word, named (None: none)."""
    if arguments.fails and arguments.batch is not None:
        return "--fails reads a campaign's failures: --batch has no meaning there"
    if arguments.hourly and not arguments.history:
        return "--hourly goes with --history"
    if (arguments.start or arguments.end) and not (arguments.fails or arguments.history):
        return "--from and --to go with --fails or --history"
    return None


def _topics(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.engine.topics import ensure_topics

    created = ensure_topics(settings)
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    return 0


def _add_campaign_commands(commands: Any) -> None:
    campaigns = commands.add_parser(
        "campaigns",
        help="a VDN's campaigns and their lifecycle (list), or end one now (delete)",
        description="Campaigns end by a campaign.closed event or by going idle; their memory is "
        "released after a grace, their counters deleted after a retention (docs/operations.md, "
        "'Campaigns that end'). 'delete' does both now, safely while workers count.",
    )
    actions = campaigns.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every campaign of a VDN: state, records, next step")
    listing.add_argument("--vdn", type=int, required=True)
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(run=_list_campaigns)
    delete = actions.add_parser(
        "delete", help="delete a campaign's state and counters now (idempotent; logged)"
    )
    delete.add_argument("--vdn", type=int, required=True)
    delete.add_argument("--campaign", required=True)
    delete.set_defaults(run=_delete_campaign)


def _list_campaigns(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.campaigns import list_campaigns

    return list_campaigns(settings, arguments.vdn, arguments.json)


def _delete_campaign(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.campaigns import delete_campaign

    return delete_campaign(settings, arguments.vdn, arguments.campaign)


def _add_producer_commands(commands: Any) -> None:
    publish = commands.add_parser(
        "publish",
        help="publish call events from a file (JSON lines or a JSON array; - for stdin)",
        description="Every event is validated first; the invalid ones and those Kafka did not "
        "acknowledge go to the rejects file with the reason. Exit status 0 when all were sent, "
        "1 when some were not, 2 when the input or Kafka cannot be reached.",
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
    publish.set_defaults(run=_publish)

    simulate = commands.add_parser(
        "simulate",
        help="publish realistic campaign traffic (imports, calls, retries, removals)",
        description="Runs until the traffic is used up, --events are sent or --duration is "
        "over. Deterministic with --seed (and --now).",
    )
    shape = simulate.add_argument_group("the traffic")
    shape.add_argument("--vdn", type=int, default=1, help="the VDN (1)")
    shape.add_argument("--campaigns", type=int, default=3, help="campaigns (3)")
    shape.add_argument("--batches", type=int, default=2, help="batches per campaign (2)")
    shape.add_argument("--records", type=int, default=200, help="records per batch (200)")
    shape.add_argument("--first-campaign", type=int, default=1001, help="first campaignId (1001)")
    shape.add_argument("--connect-rate", type=float, default=0.45, help="calls answered (0.45)")
    shape.add_argument("--max-attempts", type=int, default=3, help="calls per record (3)")
    shape.add_argument("--remove-rate", type=float, default=0.03, help="records removed (0.03)")
    shape.add_argument(
        "--duplicate-rate", type=float, default=0.01, help="results pushed twice (0.01)"
    )
    shape.add_argument(
        "--timeline",
        choices=["live", "day", "midnight"],
        default="live",
        help="live: stamped when sent; day: spread over the last 24 h; midnight: the two "
        "hours around the last midnight in the VDN's zone (default live)",
    )
    shape.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    shape.add_argument(
        "--now", default=None, help="anchor the timeline here (ISO-8601 with offset) not now"
    )
    pace = simulate.add_argument_group("pace and output")
    pace.add_argument("--rate", type=float, default=0.0, help="events/s (0: as fast as possible)")
    pace.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    pace.add_argument("--events", type=int, default=None, help="stop after N events")
    pace.add_argument(
        "--expect", type=Path, default=None, help="write the statistics the API should serve"
    )
    pace.add_argument(
        "--output", type=Path, default=None, help="write JSON lines here (- stdout), not Kafka"
    )
    simulate.set_defaults(run=_simulate)


def _publish(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.publish import publish_file

    rejects = arguments.rejects or Path(
        "rejected.jsonl" if arguments.file == "-" else f"{arguments.file}.rejected.jsonl"
    )
    return publish_file(settings, arguments.file, rejects, arguments.timeout)


def _simulate(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.exit_status import EXIT_CANNOT_START
    from isales_stats.commands.simulate import random_seed, run_simulation
    from isales_stats.core.events import InvalidEvent, parse_occurred_at
    from isales_stats.producing.simulator import TrafficOptions

    try:
        now_ms = None if arguments.now is None else parse_occurred_at(arguments.now)
        options = TrafficOptions(
            vdn_id=arguments.vdn,
            campaigns=arguments.campaigns,
            batches=arguments.batches,
            records=arguments.records,
            first_campaign=arguments.first_campaign,
            connect_rate=arguments.connect_rate,
            max_attempts=arguments.max_attempts,
            remove_rate=arguments.remove_rate,
            duplicate_rate=arguments.duplicate_rate,
            timeline=arguments.timeline,
            seed=random_seed() if arguments.seed is None else arguments.seed,
            final_fail_codes=settings.final_fail_codes,
        )
    except (InvalidEvent, ValueError) as error:
        print(f"isales-stats simulate: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    return run_simulation(
        settings,
        options,
        rate=arguments.rate,
        duration=arguments.duration,
        max_events=arguments.events,
        now_ms=now_ms,
        expect_path=arguments.expect,
        output_path=arguments.output,
    )


def _demo(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.demo import run_demo

    return run_demo(settings)


if __name__ == "__main__":
    sys.exit(main())
