"""``isales-stats worker``: one Faust worker process counting call events."""

from __future__ import annotations

import asyncio
from typing import NoReturn

import faust

from isales_stats.core.kafka_connection import KafkaAccessRefused, check_kafka_access
from isales_stats.core.settings import Settings
from isales_stats.engine import health
from isales_stats.engine.agents import register_agents
from isales_stats.engine.app import create_app
from isales_stats.engine.redis_connection import RedisAccessRefused, verify_access
from isales_stats.engine.topics import ensure_topics


def run_worker(settings: Settings, loglevel: str = "warning") -> NoReturn:
    # A wrong password or CA stops us here, named, instead of a client retrying it forever.
    try:
        asyncio.run(verify_access(settings))
        check_kafka_access(settings)
    except (RedisAccessRefused, KafkaAccessRefused) as error:
        raise SystemExit(f"isales-stats worker: {error}") from None
    ensure_topics(settings)
    if settings.worker_metrics_port:
        # Every interface: Prometheus scrapes the pod's address (the port is not the public one).
        health.serve(settings.worker_metrics_port)
    app = create_app(settings)
    register_agents(app, settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # No terminal spinner: to spin on every log line, Faust sets the root logger to DEBUG and
    # hands every record to it, so each debug call in aiokafka (several per fetch) built a
    # LogRecord only for it to be dropped (a few % of the worker's CPU in a profile). Without
    # it the root logger keeps ``loglevel``.
    worker.spinner = None
    worker.execute_from_commandline()  # exits the process when the worker is told to stop
