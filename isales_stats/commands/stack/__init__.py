"""The local stack: a real Kafka broker (KRaft) and a real Redis on 127.0.0.1.

``isales-stats stack up | down | status``. Nothing here is a fake: Kafka is Apache Kafka's own
broker, assembled from Maven Central (no Docker, no tarball needed), and Redis is Debian's
``redis-server``. Each process's pid is kept in a file, so ``down`` stops exactly what ``up``
started and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from isales_stats.commands.stack.kafka import KafkaBroker
from isales_stats.commands.stack.processes import ServiceStatus, StackError
from isales_stats.commands.stack.redis import RedisServer
from isales_stats.core.settings import Settings

__all__ = ["Stack", "StackError", "StackReport"]


@dataclass(frozen=True)
class StackReport:
    """What ``up`` did: which services it started (the rest were already running)."""

    started: list[str]
    statuses: list[ServiceStatus]


class Stack:
    """Kafka and Redis together, in start order."""

    def __init__(self, settings: Settings) -> None:
        self.redis = RedisServer(settings)
        self.kafka = KafkaBroker(settings)
        self.services = (self.redis, self.kafka)

    def up(self) -> StackReport:
        started = [service.name for service in self.services if service.ensure_running()]
        return StackReport(started=started, statuses=self.status())

    def down(self, only: list[str] | None = None) -> list[str]:
        """Stop the services this stack started (all, or those named); return what was stopped."""
        stopped = []
        for service in reversed(self.services):
            if (only is None or service.name in only) and service.stop():
                stopped.append(service.name)
        return stopped

    def status(self) -> list[ServiceStatus]:
        return [service.status() for service in self.services]
