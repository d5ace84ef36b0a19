"""``isales-stats worker``: one Faust worker process counting call events."""

from __future__ import annotations

import asyncio
import signal
import sys
from types import FrameType
from typing import NoReturn

import faust
from kafka.errors import KafkaError

from isales_stats.core.kafka_connection import KafkaAccessRefused, kafka_address
from isales_stats.core.listening import listen_failure
from isales_stats.core.settings import Settings
from isales_stats.engine import health
from isales_stats.engine.agents import register_agents
from isales_stats.engine.app import create_app
from isales_stats.engine.kafka_wait import wait_for_kafka
from isales_stats.engine.redis_connection import RedisAccessRefused, verify_access

# 128 + SIGTERM, what a shell reports for a process a SIGTERM ended.
EXIT_ON_SIGTERM = 128 + signal.SIGTERM


def run_worker(settings: Settings, loglevel: str = "warning") -> NoReturn:
    # In a container the worker is PID 1, and the kernel drops a signal that PID 1 has no
    # handler for: without this, a worker waiting for Kafka outlives SIGTERM until the
    # orchestrator's grace period ends in SIGKILL. Faust installs its own handlers later.
    signal.signal(signal.SIGTERM, _stop_before_counting)
    try:
        for server in settings.kafka_bootstrap_servers:
            kafka_address(server)
    except ValueError as error:
        raise SystemExit(f"isales-stats worker: {error}") from None
    # A wrong password or CA stops us here, named, instead of a client retrying it forever.
    try:
        asyncio.run(verify_access(settings))
    except RedisAccessRefused as error:
        raise SystemExit(f"isales-stats worker: {error}") from None
    if settings.worker_metrics_port:
        # Loopback unless ISALES_WORKER_METRICS_HOST says otherwise (the pod's address).
        # Open before Kafka is reached: alive while the worker waits, ready once it got there.
        try:
            health.serve(settings.worker_metrics_port, settings.worker_metrics_host)
        except OSError as error:
            failure = listen_failure(
                error,
                settings.worker_metrics_host,
                settings.worker_metrics_port,
                "ISALES_WORKER_METRICS_PORT",
                "ISALES_WORKER_METRICS_HOST",
            )
            raise SystemExit(f"isales-stats worker: {failure}") from None
    try:
        wait_for_kafka(settings, say)
    except KafkaAccessRefused as error:
        raise SystemExit(f"isales-stats worker: {error}") from None
    except KeyboardInterrupt:  # Ctrl-C while waiting: nothing to wind down yet
        raise SystemExit(130) from None
    except KafkaError as error:  # no retry mends it (a topic the cluster cannot create)
        raise SystemExit(f"isales-stats worker: making the topics failed: {error}") from None
    health.KAFKA_REACHED.set()
    app = create_app(settings)
    register_agents(app, settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # No terminal spinner: to spin on every log line, Faust sets the root logger to DEBUG and
    # hands every record to it, so each debug call in aiokafka (several per fetch) built a
    # LogRecord only for it to be dropped (a few % of the worker's CPU in a profile). Without
    # it the root logger keeps ``loglevel``.
    worker.spinner = None
    worker.execute_from_commandline()  # exits the process when the worker is told to stop


def _stop_before_counting(signum: int, frame: FrameType | None) -> NoReturn:
    """SIGTERM before Faust runs: nothing consumed, nothing to commit; go in one line."""
    say("stopped by SIGTERM before counting began")
    raise SystemExit(EXIT_ON_SIGTERM)


def say(line: str) -> None:
    """One line of the worker's own on stderr, before Faust's logging is set up."""
    print(f"isales-stats worker: {line}", file=sys.stderr, flush=True)
