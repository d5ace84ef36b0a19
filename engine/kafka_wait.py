"""A worker started before Kafka: it waits, a line per attempt, instead of crashing.

Kafka that is not there yet is a normal first minute (compose and Kubernetes start everything
at once; a broker takes seconds to come up): kafka-python's admin would give up after its 30 s
bootstrap with a traceback, and the orchestrator would restart the worker to the same end.
Here each attempt asks first whether any bootstrap server accepts a connection at all (quick,
and a name that does not resolve yet counts as nobody), then checks access as the clients will
(``check_kafka_access``: a wrong password or CA is a ``KafkaAccessRefused`` that stops the
worker at once, never retried), then makes sure the topics exist. Between attempts the pause
doubles from ``FIRST_PAUSE_SECONDS`` up to ``LONGEST_PAUSE_SECONDS``: quick for a broker that
is starting, a line every quarter minute for one that is down.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from kafka.errors import RetriableError

from isales_stats.core.kafka_connection import check_kafka_access
from isales_stats.core.settings import Settings
from isales_stats.engine import metrics
from isales_stats.engine.topics import ensure_topics

FIRST_PAUSE_SECONDS = 1.0
LONGEST_PAUSE_SECONDS = 15.0
CONNECT_TIMEOUT_SECONDS = 3.0


def wait_for_kafka(
    settings: Settings,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Return once Kafka answered and the topics exist, having said each failed attempt in one
    line through ``say``; the number of attempts it took. ``KafkaAccessRefused`` at once when
    Kafka answers but refuses our settings; other Kafka errors that no retry mends (a topic
    the cluster cannot create) are raised as they are."""
    servers = ",".join(settings.kafka_bootstrap_servers)
    pause = FIRST_PAUSE_SECONDS
    attempt = 1
    while True:
        problem = _attempt(settings)
        if problem is None:
            return attempt
        metrics.KAFKA_WAITS.inc()
        say(
            f"waiting for Kafka at {servers} (ISALES_KAFKA_URL): {problem}; "
            f"attempt {attempt}, next in {pause:.0f} s"
        )
        sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
        attempt += 1


def _attempt(settings: Settings) -> str | None:
    """What kept this attempt from Kafka, or None when it got there."""
    if not _any_server_accepts(settings.kafka_bootstrap_servers):
        return "nothing accepts a connection"
    check_kafka_access(settings)
    try:
        ensure_topics(settings)
    except RetriableError as error:  # answering, but not yet a broker that serves metadata
        return f"no answer yet ({type(error).__name__})"
    return None


def _any_server_accepts(servers: list[str]) -> bool:
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_SECONDS):
                return True
        except OSError:  # refused, unreachable, timed out, or a name not resolving (yet)
            continue
    return False
