"""A worker started before Kafka: it waits, a line per attempt, instead of crashing.

Kafka that is not there yet is a normal first minute (compose and Kubernetes start everything
at once; a broker takes seconds to come up): kafka-python's admin would give up after its 30 s
bootstrap with a traceback, and the orchestrator would restart the worker to the same end.
Here each attempt asks first whether any bootstrap server accepts a connection at all (quick,
and a name that does not resolve yet counts as nobody), then checks access as the clients will
(``check_kafka_access``: a wrong password or CA is a ``KafkaAccessRefused`` that stops the
worker at once, never retried; a broker that accepts connections but does not answer yet, as
Kafka does while it starts, is ``KafkaNotAnswering`` and retried), then makes sure the topics
exist. A cluster whose brokers are still registering is retried too: too few of them for
ISALES_TOPIC_REPLICATION_FACTOR, or no controller elected yet. Between attempts the pause
doubles from ``FIRST_PAUSE_SECONDS`` up to ``LONGEST_PAUSE_SECONDS``: quick for a broker that
is starting, a line every quarter minute for one that is down.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from kafka.errors import InvalidReplicationFactorError, RetriableError

from isales_stats.core.kafka_connection import (
    KafkaNotAnswering,
    check_kafka_access,
    kafka_address,
)
from isales_stats.core.settings import Settings
from isales_stats.engine import metrics
from isales_stats.engine.topics import ensure_topics

FIRST_PAUSE_SECONDS = 1.0
LONGEST_PAUSE_SECONDS = 15.0
CONNECT_TIMEOUT_SECONDS = 3.0
ACCESS_TIMEOUT_SECONDS = 10.0  # TLS handshake and SASL login, each
# What kafka-python's admin raises, as a bare RuntimeError, before the cluster elected one.
_NO_CONTROLLER = "Failed to find active controller id!"


def wait_for_kafka(
    settings: Settings,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    access_timeout: float = ACCESS_TIMEOUT_SECONDS,
) -> int:
    """Return once Kafka answered and the topics exist, having said each failed attempt in one
    line through ``say``; the number of attempts it took. ``KafkaAccessRefused`` at once when
    Kafka answers but refuses our settings; other Kafka errors that no retry mends (a topic
    the cluster cannot create) are raised as they are (``_attempt`` says which is which).
    ``access_timeout`` bounds each step of the access check (TLS handshake, SASL login)."""
    servers = ",".join(settings.kafka_bootstrap_servers)
    pause = FIRST_PAUSE_SECONDS
    attempt = 1
    while True:
        problem = _attempt(settings, access_timeout)
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


def _attempt(settings: Settings, access_timeout: float = ACCESS_TIMEOUT_SECONDS) -> str | None:
    """One attempt at Kafka: None when it got there (access checked, topics made).

    What may mend by itself is returned, not raised: a short problem string, said in the
    waiting line, and the caller tries again after a pause (nothing accepting a connection, a
    broker accepting but not answering yet, one not serving metadata yet, too few brokers for
    the replication factor, no controller yet). What no retry mends is raised, and the caller
    stops: ``KafkaAccessRefused`` (a certificate that fails verification, a refused login),
    any other ``KafkaError`` of making the topics (the cluster refuses the topic itself)."""
    if not _any_server_accepts(settings.kafka_bootstrap_servers):
        return "nothing accepts a connection"
    try:
        check_kafka_access(settings, timeout=access_timeout)
    except KafkaNotAnswering as error:
        return str(error)
    try:
        ensure_topics(settings)
    except InvalidReplicationFactorError:  # a fresh cluster's brokers register one by one
        return (
            f"fewer brokers than ISALES_TOPIC_REPLICATION_FACTOR="
            f"{settings.topic_replication_factor} to place the topics' replicas (yet?)"
        )
    except RetriableError as error:  # answering, but not yet a broker that serves metadata
        return f"no answer yet ({type(error).__name__})"
    except RuntimeError as error:
        if str(error) != _NO_CONTROLLER:
            raise
        return "no active controller yet (the cluster is electing one)"
    return None


def _any_server_accepts(servers: list[str]) -> bool:
    for server in servers:
        host, port = kafka_address(server)
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS):
                return True
        except OSError:  # refused, unreachable, timed out, or a name not resolving (yet)
            continue
    return False
