"""Freshness: how long a record takes from ``send()`` until Redis holds it.

A thread polls Redis for the records handed to ``sent`` (``HEXISTS`` on the campaign's records
hash, pipelined) and notes, per record, when it was sent and how many milliseconds it took.
The soak (tests/test_faults_soak.py) and the engine benchmark (benchmarks/engine.py) time
their samples with it.
"""

from __future__ import annotations

import threading
import time

from redis import Redis

from isales_stats.core.keys import KeyLayout
from tests.support.state import records_known


class FreshnessWatcher:
    def __init__(
        self, redis_url: str, layout: KeyLayout, vdn_id: int = 1, poll_seconds: float = 0.002
    ) -> None:
        self.redis_url = redis_url
        self.poll_seconds = poll_seconds
        self.layout = layout
        self.vdn_id = vdn_id
        self.lock = threading.Lock()
        self.pending: dict[tuple[str, str], float] = {}  # record -> perf_counter at send
        self.samples: list[tuple[float, float]] = []  # (perf_counter at send, ms until seen)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> FreshnessWatcher:
        self.thread.start()
        return self

    def sent(self, campaign: str, data_id: str, at: float | None = None) -> None:
        with self.lock:
            self.pending[(campaign, data_id)] = time.perf_counter() if at is None else at

    def wait_for_pending(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(30)

    def milliseconds(self) -> list[float]:
        with self.lock:
            return [ms for _, ms in self.samples]

    def _watch(self) -> None:
        with Redis.from_url(self.redis_url) as redis:
            while not self.done.is_set() or self.pending:
                with self.lock:
                    waiting = list(self.pending.items())
                if waiting:
                    visible = records_known(
                        redis,
                        self.layout,
                        [(self.vdn_id, campaign, data_id) for (campaign, data_id), _ in waiting],
                    )
                    now = time.perf_counter()
                    with self.lock:
                        for (record, sent), seen in zip(waiting, visible, strict=True):
                            if seen:
                                self.samples.append((sent, (now - sent) * 1000))
                                del self.pending[record]
                time.sleep(self.poll_seconds)
