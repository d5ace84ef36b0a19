"""What the fault tests (tests/test_faults_*.py, ``make test-faults``) share.

A seed printed by every test that draws at random, a producer that keeps a steady rate while
a fault happens (so the stream is produced *during* the failure, not only before it), the
workers' own Prometheus counters, process memory, the consumer group as Kafka sees it (its
members, and whether it committed everything), and whether any replay is left (every
partition counted and committed to its log end: only then may a test conclude that exact
counts stay exact).
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError
from redis import Redis

from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from tests.support.detail import read_detail
from tests.support.kafka_topics import committed_offsets, end_offsets, wait_until_committed
from tests.support.waiting import wait_for


def fault_seed(name: str) -> int:
    """The seed of a test's random choices: ``ISALES_FAULT_SEED`` to replay one, else fresh."""
    chosen = os.environ.get("ISALES_FAULT_SEED")
    seed = int(chosen) if chosen else random.SystemRandom().randrange(1, 2**31)
    print(f"[{name}] seed {seed} (replay with ISALES_FAULT_SEED={seed})", flush=True)
    return seed


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def scrape_metric(port: int, name: str) -> float:
    """The sum over all label sets of metric ``name`` on http://127.0.0.1:PORT/metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) == name:
            total += float(match.group(3))
    return total


def wait_for_metrics(port: int, timeout: float = 60) -> None:
    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    if not wait_for(answers, timeout):
        raise TimeoutError(f"no metrics on port {port} within {timeout} s")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for pid {pid}")


# kafka-python warns that it cannot decode the member metadata of Faust's own assignor.
logging.getLogger("kafka.admin._groups").setLevel(logging.ERROR)


def group_members(settings: Settings) -> int:
    """Members of the workers' consumer group once it is Stable (0 while it rebalances)."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=5000
        )
    except (KafkaError, OSError):
        return 0
    try:
        group = admin.describe_groups([settings.worker_group])[settings.worker_group]
    except (KafkaError, OSError, KeyError):
        return 0
    finally:
        admin.close()
    if group.get("group_state", group.get("state")) != "Stable":
        return 0
    return len(group.get("members") or [])


def wait_for_group(settings: Settings, members: int, timeout: float = 90) -> float:
    """Seconds until the group is Stable with exactly ``members`` members (or TimeoutError)."""
    began = time.monotonic()
    if not wait_for(lambda: group_members(settings) == members, timeout, interval=0.5):
        raise TimeoutError(f"the group did not settle with {members} members in {timeout} s")
    return time.monotonic() - began


def wait_until_exact(settings: Settings, expected: list[dict[str, Any]], timeout: float) -> bool:
    return bool(wait_for(lambda: read_detail(settings) == expected, timeout, interval=0.5))


def assert_fully_committed(settings: Settings, log: Callable[[], str] = str) -> str:
    """Wait until the group has committed every partition to its log end (a fault test's
    second check, beside exact counts); fail naming the partitions that froze and ``log()``.
    Returns the figure: how long it took."""
    began = time.monotonic()
    behind = wait_until_committed(settings)
    assert not behind, f"the group's commits froze; uncommitted: {behind}\n{log()}"
    return f"every partition to its log end, {time.monotonic() - began:.1f} s after exact"


def replay_left(settings: Settings) -> dict[str, str]:
    """Partitions that a worker could still count or deliver again, with why; empty once none.

    A partition is done when its resume point (the last offset counted, stored in Redis with
    the counts: ``KeyLayout.counted_offsets``) is the last offset of its log, and the group's
    committed offset is its log end: no worker has anything of it left to read, and a worker
    that takes it over later resumes at the end.
    """
    ends = end_offsets(settings)
    topic = settings.call_events_topic
    committed = {
        tp.partition: offset
        for tp, offset in committed_offsets(settings).items()
        if tp.topic == topic
    }
    with Redis.from_url(settings.redis_url) as redis:
        stored = redis.hgetall(KeyLayout(settings.key_prefix).counted_offsets(topic))
    resumes = {int(partition): int(offset) + 1 for partition, offset in stored.items()}
    left: dict[str, str] = {}
    for tp, end in sorted(ends.items()):
        resume, commit = resumes.get(tp.partition, 0), committed.get(tp.partition, 0)
        if resume < end or commit < end:
            left[f"partition {tp.partition}"] = (
                f"log end {end}, resumes at {resume}, committed {commit}"
            )
    return left


def assert_replay_over(
    settings: Settings, log: Callable[[], str] = str, timeout: float = 120
) -> str:
    """Wait until every partition is counted and committed to its log end (``replay_left``):
    then nothing can be counted again, and counts that are still exact stay so. A fault test's
    second check beside exact counts (it includes ``assert_fully_committed``'s); fail naming the
    partitions left and ``log()``. Returns the figure: how long it took."""
    began = time.monotonic()
    over = wait_for(lambda: not replay_left(settings), timeout, interval=0.5)
    assert over, f"the replay is not over after {timeout} s: {replay_left(settings)}\n{log()}"
    return (
        "every partition counted (resume point) and committed to its log end, "
        f"{time.monotonic() - began:.1f} s after exact"
    )


@dataclass
class PacedProducer:
    """Sends (key, value) pairs at ``rate`` per second from a thread, with ``acks="all"``.

    kafka-python retries what a broker failure interrupts (idempotently, so a retry does not
    duplicate); a send that still fails lands in ``failures``. ``sent`` moves as it goes, so
    a test can time a fault by how much of the stream is out.

    It keeps the rate in ticks of ``TICK_SECONDS``: it sleeps only when it is that far ahead,
    then sends what has come due. Sleeping whenever it was 2 ms ahead made requests of one or
    two records per partition, and cost 56 us of CPU per event at 5,000/s against 31 us in
    20 ms ticks (2026-12-02, this machine), CPU the soak's workers, Kafka and Redis share.
    ``on_send`` still times each record at its own ``send()``.
    """

    TICK_SECONDS: ClassVar[float] = 0.02

    settings: Settings
    messages: Iterable[tuple[bytes | None, bytes | None]]  # a generator too (give ``total``)
    rate: float
    total: int = 0  # how many ``messages`` holds (its length when it has one)
    producer_options: dict[str, Any] = field(default_factory=dict)
    on_send: Callable[[int, float], None] | None = None  # (index, perf_counter) after each send
    sent: int = 0
    acknowledged: int = 0
    failures: list[str] = field(default_factory=list)
    metadata: dict[int, tuple[int, int]] = field(default_factory=dict)  # index -> (part, offset)
    keep_metadata: bool = False
    seconds: float = 0.0
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def __post_init__(self) -> None:
        if not self.total and isinstance(self.messages, Sized):
            self.total = len(self.messages)

    def start(self) -> PacedProducer:
        self._thread = threading.Thread(target=self._run, name="paced-producer", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the producer did not finish in time")
        if self._error is not None:
            raise self._error

    @property
    def fraction_sent(self) -> float:
        return self.sent / max(1, self.total)

    def wait_for_fraction(self, fraction: float, timeout: float = 600) -> None:
        if not wait_for(lambda: self.fraction_sent >= fraction, timeout, interval=0.05):
            raise TimeoutError(f"the producer did not reach {fraction:.0%} of the stream")

    def _run(self) -> None:
        try:
            producer = KafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                acks="all",
                retries=2**31 - 1,
                delivery_timeout_ms=300_000,
                request_timeout_ms=15_000,
                linger_ms=5,
                batch_size=256 * 1024,
                **self.producer_options,
            )
            began = time.perf_counter()
            topic = self.settings.call_events_topic
            for index, (key, value) in enumerate(self.messages):
                due = began + index / self.rate
                pause = due - time.perf_counter()
                if pause > self.TICK_SECONDS:
                    time.sleep(pause)
                future = producer.send(topic, key=key, value=value)
                future.add_callback(self._acknowledged, index)
                future.add_errback(self._failed, index)
                self.sent = index + 1
                if self.on_send is not None:
                    self.on_send(index, time.perf_counter())
            producer.flush()
            producer.close()
            self.seconds = time.perf_counter() - began
        except BaseException as error:  # reported by join()
            self._error = error

    def _acknowledged(self, index: int, record: Any) -> None:
        self.acknowledged += 1
        if self.keep_metadata:
            self.metadata[index] = (record.partition, record.offset)

    def _failed(self, index: int, error: BaseException) -> None:
        self.failures.append(f"message {index}: {error!r}")


def figures(title: str, rows: dict[str, Any]) -> None:
    """Print a test's measured figures in one block (``make test-faults`` shows them)."""
    width = max(len(name) for name in rows)
    lines = [f"== {title}"] + [f"   {name:<{width}}  {value}" for name, value in rows.items()]
    print("\n".join(lines), flush=True)
