"""The consumer group as an operator watches it: commits that reach the log end after a crash,
and the per-partition lag a worker exports (engine/lag.py).

A worker killed with ``kill -9`` leaves Redis ahead of Kafka: the counts and their resume points
are written with every batch, the group's offsets only every few seconds. The next worker
resumes from Redis, past Kafka's commit (engine/batch_delivery.py, ``perform_seek``). Before
issue 13 that froze the group's offset on such partitions for good: Faust's bookkeeping started
at Kafka's older commit and waited for acknowledgements of offsets it would never be given
again. Counts stayed exact, but lag never went away and every later acknowledgement stayed in
the worker's memory. The fault matrix asserts full commits too (tests/support/faults.py).

The lag gauges are read as Prometheus would, from a worker that starts with a backlog: the
uncounted messages must show and then reach 0, the uncommitted ones must follow, and the age of
the last counted event must be that of the backlog.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from kafka import KafkaAdminClient
from redis import Redis

from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from tests.support.chunked_stream import chunk_sizes, expected_statistics, soak_chunk
from tests.support.detail import (
    distinct_identities_counted,
    expected_detail,
    identities_in,
    read_detail,
)
from tests.support.faults import (
    PacedProducer,
    assert_fully_committed,
    rss_bytes,
    scrape_metric,
    wait_for_metrics,
    wait_until_exact,
)
from tests.support.kafka_topics import committed_offsets, end_offsets, publish
from tests.support.monitoring import metrics_named, pipeline_expressions
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.streams import campaign_stream
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack

STREAM_EVENTS = 30_000


def partitions_resumed_past_the_commit(settings: Settings) -> list[int]:
    """Partitions whose resume point in Redis is more than one past the group's commit."""
    layout = KeyLayout(settings.key_prefix)
    with Redis.from_url(settings.redis_url) as redis:
        counted = redis.hgetall(layout.counted_offsets(settings.call_events_topic))
    committed = {tp.partition: offset for tp, offset in committed_offsets(settings).items()}
    return sorted(
        int(partition)
        for partition, last in counted.items()
        if int(last) + 1 > committed.get(int(partition), 0) + 1
    )


@pytest.mark.slow
@pytest.mark.faults  # three kill -9s, about 25 s each: with the fault matrix (make test-faults)
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_after_a_kill_9_the_next_worker_commits_every_partition_to_its_end(
    seed: int, test_settings: Settings, tmp_path: Path
) -> None:
    stream = campaign_stream(STREAM_EVENTS, seed=seed, now=datetime.now(UTC))
    expected = expected_detail(stream)
    campaigns = [entry["campaignId"] for entry in expected]
    total = identities_in(stream)
    publish(test_settings, stream)

    goal = random.Random(seed).uniform(0.3, 0.7) * total
    first = ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0)
    first.start()
    # Killed at a moment when Redis is ahead of the commit (what the next worker must resume
    # from), polled together with the goal: a batch's resume points are stored a round trip
    # after its counts (engine/counting.py), so the counts alone may show before they do.
    reached = wait_for(
        lambda: (
            distinct_identities_counted(test_settings, campaigns) >= goal
            and bool(partitions_resumed_past_the_commit(test_settings))
        ),
        120,
        interval=0.02,
    )
    first.kill()
    assert reached, f"the first worker made no progress:\n{first.log()}"
    ahead = partitions_resumed_past_the_commit(test_settings)
    assert ahead, "Redis was not ahead of Kafka's commit at the kill: nothing was tested"

    with ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as last:
        assert wait_until_exact(test_settings, expected, timeout=120), last.log()
        assert_fully_committed(test_settings, last.log)


MILLION = 1_000_000
MB = 1024 * 1024
READ_METRICS = ("isales_events_counted_total", "isales_events_duplicate_total")


@pytest.mark.slow
@pytest.mark.faults  # 1.1 million events, about two minutes: with the fault matrix
def test_after_a_crash_the_next_worker_counts_a_million_events_in_flat_memory(
    test_settings: Settings, tmp_path: Path
) -> None:
    """Frozen, Faust kept every later acknowledgement in memory: after a kill -9 the next
    worker counts 1,000,000 more events, with its resident memory flat, exactly, to the end."""
    seed, now = 21, datetime.now(UTC)
    sizes = chunk_sizes(100_000 + MILLION)  # ten chunks before the crash, a hundred after

    def messages(chunks: range) -> Iterator[tuple[bytes | None, bytes | None]]:
        for number in chunks:
            for event in soak_chunk(seed, number, sizes[number], now):
                yield f"1:{event['campaignId']}".encode(), orjson.dumps(event)

    ensure_topics(test_settings)
    PacedProducer(test_settings, messages(range(10)), 100_000, total=100_000).start().join(300)
    port = free_port()
    first = ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=port)
    first.start()
    wait_for_metrics(port)
    # Killed at a moment when Redis is ahead of the commit (what the next worker must resume
    # from): between one batch counted and Faust's next commit. Polled together, as on a slow
    # day the commit may have caught up by the time 40,000 is seen.
    reached = wait_for(
        lambda: (
            scrape_metric(port, "isales_events_counted_total") >= 40_000
            and bool(partitions_resumed_past_the_commit(test_settings))
        ),
        120,
        interval=0.05,
    )
    first.kill()
    assert reached, f"the first worker made no progress:\n{first.log()}"
    assert partitions_resumed_past_the_commit(test_settings), "Redis was not ahead at the kill"

    port = free_port()
    samples: list[tuple[float, int]] = []  # (events counted, RSS bytes)
    with ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=port) as w:
        wait_for_metrics(port)
        assert w.process is not None
        pid, deadline = w.process.pid, time.monotonic() + 600

        def sample() -> None:  # what it has read (counted or found counted) and its RSS
            read = sum(scrape_metric(port, name) for name in READ_METRICS)
            samples.append((read, rss_bytes(pid)))

        sample()  # before the million
        producer = PacedProducer(
            test_settings, messages(range(10, len(sizes))), 100_000, total=MILLION
        ).start()
        expected = expected_statistics(seed, sizes, now)  # the model while the worker counts
        while not wait_until_exact(test_settings, expected, timeout=1):
            assert time.monotonic() < deadline, f"not exact in 600 s:\n{w.log()}"
            sample()
        producer.join(60)
        sample()
        committed = assert_fully_committed(test_settings, w.log)
    warm = next(rss for read, rss in samples if read >= 200_000)
    peak, last = max(rss for _, rss in samples), samples[-1][1]
    print(
        f"\n[million after a crash] {samples[-1][0]:,.0f} events read by the next worker; "
        f"RSS {samples[0][1] / MB:.0f} MB before them, {warm / MB:.0f} MB after 200,000, "
        f"{peak / MB:.0f} MB at most, {last / MB:.0f} MB at the end; {committed}"
    )
    # Flat: what a frozen partition kept (an int per event of a quarter of the stream, a few
    # MB, and a slower commit each time) would show beyond the fetch buffers' own swing.
    assert last <= warm + 16 * MB, (warm, last, samples[::10])
    assert samples[-1][0] >= MILLION


def test_a_worker_exports_its_lag_per_partition_until_it_has_caught_up(
    test_settings: Settings, tmp_path: Path
) -> None:
    stream = campaign_stream(60_000, seed=14, now=datetime.now(UTC))
    publish(test_settings, stream)
    published = time.time()
    expected = expected_detail(stream)

    port = free_port()
    with ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=port) as w:
        wait_for_metrics(port)
        backlog, deadline = 0.0, time.monotonic() + 120
        while not wait_until_exact(test_settings, expected, timeout=0.2):
            assert time.monotonic() < deadline, f"not exact in 120 s:\n{w.log()}"
            backlog = max(backlog, scrape_metric(port, "isales_partition_uncounted_messages"))
        assert backlog > 0, "a worker that starts behind a backlog showed no uncounted messages"
        assert wait_for(
            lambda: scrape_metric(port, "isales_partition_uncounted_messages") == 0, 30
        ), w.log()
        assert wait_for(
            lambda: scrape_metric(port, "isales_partition_uncommitted_messages") == 0, 30
        ), w.log()
        since_published = time.time() - published  # before the scrape: its ages are larger
        ages = gauges(port, "isales_partition_last_counted_event_age_seconds")
        page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    # What the pipeline dashboard and the alerts query is on a live worker's page.
    for _, expression in pipeline_expressions():
        for name in metrics_named(expression):
            assert name in page, f"the dashboard queries {name}, which the worker does not export"
    # One age per partition with events, each at least the time since the last was produced.
    assert ages
    assert all(age >= since_published for age in ages.values()), (ages, since_published)


def gauges(port: int, name: str) -> dict[str, float]:
    """Label set -> value of every sample of ``name`` on the worker's metrics page."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            found[labels] = float(value)
    return found


def test_a_resume_point_older_than_the_log_is_reported_loudly(
    test_settings: Settings, tmp_path: Path
) -> None:
    """Retention deleted events before any worker counted them: a metric and an error say so."""
    now = datetime.now(UTC)
    counted = campaign_stream(3_000, seed=15, now=now)
    publish(test_settings, counted)
    with ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as w:
        assert wait_until_exact(test_settings, expected_detail(counted), timeout=60), w.log()
    counted_to = end_offsets(test_settings)
    never_counted = [
        {**event, "dataId": f"late-{event['dataId']}"}
        | ({"callId": f"late-{event['callId']}"} if "callId" in event else {})
        for event in campaign_stream(2_000, seed=16, now=now)
    ]
    publish(test_settings, never_counted)
    ends = end_offsets(test_settings)
    admin = KafkaAdminClient(bootstrap_servers=test_settings.kafka_bootstrap_servers)
    try:  # what a retention of minutes would have done while no worker ran
        admin.delete_records({tp: end for tp, end in ends.items() if end})
    finally:
        admin.close()
    lost = sum(ends[tp] - counted_to[tp] for tp in ends)
    assert lost == len(never_counted)

    port = free_port()
    with ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=port) as w:
        wait_for_metrics(port)
        reported = wait_for(
            lambda: scrape_metric(port, "isales_events_lost_to_retention_total") == lost, 60
        )
        assert reported, w.log()
        assert "older than the earliest offset Kafka still holds" in w.log()
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 503, ready.text
        assert f"{test_settings.call_events_topic}/" in ready.text, ready.text
        assert "missing from the statistics" in ready.text
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        assert_fully_committed(test_settings, w.log)
    # The counts are those of the first stream: the rest is gone, and said to be.
    assert read_detail(test_settings) == expected_detail(counted)
