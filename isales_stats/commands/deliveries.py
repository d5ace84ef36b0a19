"""Sends in flight and their outcomes, for the commands that publish many events and report.

kafka-python answers every send through a future, on its own sender thread, so the tally is
kept under a lock. A send that is never answered (Kafka gone before the flush ended) must not
vanish from the report: ``give_up`` counts whatever is still pending as failed.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any


class Deliveries:
    """Sends in flight and their outcomes; the producer's thread reports through the callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[dict[str, Any], Any]] = {}
        self._numbers = itertools.count()
        self.acknowledged = 0
        self.failures: list[dict[str, Any]] = []

    def track(self, future: Any, where: dict[str, Any], event: Any) -> None:
        number = next(self._numbers)
        with self._lock:
            self._pending[number] = (where, event)
        future.add_callback(lambda _metadata: self._acknowledged(number))
        future.add_errback(lambda error: self._failed(number, error))

    def fail(self, where: dict[str, Any], event: Any, error: BaseException) -> None:
        with self._lock:
            self.failures.append({**where, "reason": f"send failed: {error!r}", "event": event})

    def give_up(self) -> None:
        """Whatever is still unanswered counts as failed."""
        with self._lock:
            for where, event in self._pending.values():
                self.failures.append(
                    {**where, "reason": "send failed: not acknowledged in time", "event": event}
                )
            self._pending.clear()

    def _acknowledged(self, number: int) -> None:
        with self._lock:
            if self._pending.pop(number, None) is not None:
                self.acknowledged += 1

    def _failed(self, number: int, error: BaseException) -> None:
        with self._lock:
            entry = self._pending.pop(number, None)
        if entry is not None:
            self.fail(*entry, error)
