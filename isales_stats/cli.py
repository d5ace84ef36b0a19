"""The ``isales-stats`` command: stack, worker, api and the producer tools."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from isales_stats.settings import Settings, get_settings


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
    api.set_defaults(run=_api)

    topics = commands.add_parser("topics", help="create the call-events and dead-letter topics")
    topics.set_defaults(run=_topics)

    demo = commands.add_parser("demo", help="stack, worker, API and sample traffic, until Ctrl-C")
    demo.set_defaults(run=_demo)
    return parser


def _stack(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.stack import Stack, StackError

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
    from engine.worker import run_worker

    return run_worker(settings, loglevel=arguments.loglevel)


def _api(arguments: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=arguments.host or settings.api_host,
        port=arguments.port or settings.api_port,
        log_level="warning",
    )
    return 0


def _topics(arguments: argparse.Namespace, settings: Settings) -> int:
    from engine.topics import ensure_topics

    created = ensure_topics(settings)
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    return 0


def _demo(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.demo import run_demo

    return run_demo(settings)


if __name__ == "__main__":
    sys.exit(main())
