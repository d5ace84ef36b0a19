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
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kafka import KafkaAdminClient
from redis import Redis

from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from tests.support.detail import (
    distinct_identities_counted,
    expected_detail,
    identities_in,
    read_detail,
)
from tests.support.faults import (
    assert_fully_committed,
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
    reached = wait_for(
        lambda: distinct_identities_counted(test_settings, campaigns) >= goal, 120, interval=0.02
    )
    first.kill()
    assert reached, f"the first worker made no progress:\n{first.log()}"
    ahead = partitions_resumed_past_the_commit(test_settings)
    assert ahead, "Redis was not ahead of Kafka's commit at the kill: nothing was tested"

    with ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as last:
        assert wait_until_exact(test_settings, expected, timeout=120), last.log()
        assert_fully_committed(test_settings, last.log)


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
        assert_fully_committed(test_settings, w.log)
    # The counts are those of the first stream: the rest is gone, and said to be.
    assert read_detail(test_settings) == expected_detail(counted)
