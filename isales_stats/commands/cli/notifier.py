"""``isales-stats notifier``: one notifier delivering webhooks (``engine/notifications/``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from isales_stats.commands.cli.command import Subcommands, add_command
from isales_stats.commands.exit_status import EXIT_CANNOT_START
from isales_stats.core.settings import Settings

DESCRIPTION = """\
Run one notifier: it delivers every campaign's notifications (its outbox) to the
webhook subscriptions covering its VDN, signed (Standard Webhooks), in order per
campaign and subscription, retried with backoff until delivered or given up (a
dead letter), until SIGTERM or Ctrl-C. Run several: they share the campaigns by
shards of the due set, each shard leased by one notifier and taken over when
its notifier dies.

Reads the ISALES_REDIS_* settings, ISALES_KEY_PREFIX, ISALES_WEBHOOK_* (timeouts,
retries, address policy) and ISALES_NOTIFIER_* (shards, leases, in-flight caps,
ISALES_NOTIFIER_METRICS_PORT: /metrics for Prometheus, /healthz, and /readyz,
ready while Redis answers; 0: none). docs/notifications.md.

Example:
  ISALES_NOTIFIER_METRICS_PORT=0 isales-stats notifier --loglevel info
"""


def register(commands: Subcommands) -> None:
    notifier = add_command(
        commands,
        "notifier",
        help="run a notifier that delivers webhooks",
        description=DESCRIPTION,
        run=run_notifier,
    )
    notifier.add_argument("--loglevel", default="warning")


def run_notifier(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.engine import health
    from isales_stats.engine.notifications.notifier import NotifierReadiness
    from isales_stats.engine.notifications.notifier import run_notifier as run
    from isales_stats.engine.redis_connection import RedisAccessRefused, verify_access

    logging.basicConfig(
        level=arguments.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    try:
        asyncio.run(verify_access(settings))
    except RedisAccessRefused as error:
        print(f"isales-stats notifier: {error}")
        return EXIT_CANNOT_START
    readiness = NotifierReadiness(settings.notifier_lease_seconds)
    if settings.notifier_metrics_port:
        # Before the notifier's event loop: the port runs its own loop in a thread, and starting
        # it from inside a running loop fails.
        try:
            health.serve(settings.notifier_metrics_port, settings.notifier_metrics_host, readiness)
        except OSError as error:
            print(
                "isales-stats notifier: cannot serve metrics on "
                f"ISALES_NOTIFIER_METRICS_PORT={settings.notifier_metrics_port}: {error}"
            )
            return EXIT_CANNOT_START

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, stop.set)
        await run(settings, stop, readiness)
        return 0

    return asyncio.run(main())
