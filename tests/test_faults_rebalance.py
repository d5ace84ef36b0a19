"""Fault row 2: scale-out and scale-in mid-stream; the consumer group rebalances twice.

Three workers share a 12-partition topic while 200,000 events are produced at 5,000/s; at a
quarter of the stream a fourth worker joins, at 60 % the first one leaves (SIGTERM, as a
scale-in does). Each rebalance revokes partitions while batches are in flight and hands them
to a worker that resumes from the offsets stored with the counts. The final statistics must
be exactly the reference model's, and still be once every partition is counted and committed
to its log end (nothing left to replay); each of the four workers must have counted events
(``isales_events_counted_total`` from its own metrics endpoint), and none may have taken a
rebalance for a loss of Redis (``isales_redis_lost_writes_total`` stays 0: Redis lost nothing).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from tests.support.detail import expected_detail, read_detail
from tests.support.faults import (
    PacedProducer,
    assert_replay_over,
    fault_seed,
    figures,
    scrape_metric,
    wait_for_group,
    wait_for_metrics,
    wait_until_exact,
)
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.streams import campaign_stream, encoded

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.faults]

STREAM_EVENTS = 200_000
RATE = 5_000
# Enough campaigns (keys) that every worker's share of the 12 partitions carries events.
CAMPAIGNS = 36


def test_a_worker_joins_and_one_leaves_mid_stream_and_the_counts_stay_exact(
    test_settings: Settings, tmp_path: Path
) -> None:
    began = time.monotonic()
    seed = fault_seed("row 2: scale-out")
    stream = campaign_stream(STREAM_EVENTS, campaigns=CAMPAIGNS, seed=seed, now=datetime.now(UTC))
    expected = expected_detail(stream)
    ensure_topics(test_settings)
    assert test_settings.call_events_partitions == 12

    ports = [free_port() for _ in range(4)]
    workers = [
        ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=port)
        for port in ports
    ]
    counted: dict[int, float] = {}
    duplicates: dict[int, float] = {}
    false_alarms: dict[int, float] = {}  # "Redis lost counts" although Redis lost nothing
    try:
        for worker in workers[:3]:
            worker.start()
        settle_3 = wait_for_group(test_settings, 3, timeout=120)
        producer = PacedProducer(test_settings, encoded(stream), RATE).start()

        producer.wait_for_fraction(0.25)
        workers[3].start()
        joined_at = producer.fraction_sent
        settle_4 = wait_for_group(test_settings, 4)
        print(f"[row 2] worker 4 joined at {joined_at:.0%}; group stable in {settle_4:.1f} s")

        producer.wait_for_fraction(0.6)
        wait_for_metrics(ports[0])
        counted[1] = scrape_metric(ports[0], "isales_events_counted_total")
        duplicates[1] = scrape_metric(ports[0], "isales_events_duplicate_total")
        false_alarms[1] = scrape_metric(ports[0], "isales_redis_lost_writes_total")
        left_at = producer.fraction_sent
        workers[0].stop()
        settle_leave = wait_for_group(test_settings, 3)
        print(f"[row 2] worker 1 left at {left_at:.0%}; group stable in {settle_leave:.1f} s")

        producer.join(timeout=300)
        assert not producer.failures, producer.failures[:5]
        produced_in = producer.seconds
        exact = wait_until_exact(test_settings, expected, timeout=180)
        assert exact, "counts after two rebalances differ from the model:\n" + "\n".join(
            worker.log() for worker in workers[1:]
        )
        committed = assert_replay_over(
            test_settings, lambda: "\n".join(worker.log() for worker in workers[1:])
        )
        assert read_detail(test_settings) == expected, "a replay changed the counts"
        for number, port in enumerate(ports[1:], start=2):
            counted[number] = scrape_metric(port, "isales_events_counted_total")
            duplicates[number] = scrape_metric(port, "isales_events_duplicate_total")
            false_alarms[number] = scrape_metric(port, "isales_redis_lost_writes_total")
    finally:
        for worker in workers:
            worker.stop()

    shares = {number: counted[number] / sum(counted.values()) for number in counted}
    figures(
        "row 2: scale-out (3 workers, +1 at 25 %, -1 at 60 %)",
        {
            "seed": seed,
            "events": f"{len(stream):,} at {RATE:,}/s (produced in {produced_in:.1f} s), "
            f"{CAMPAIGNS} campaigns, 12 partitions",
            "group of 3 stable": f"{settle_3:.1f} s after start",
            "worker 4 joins": f"at {joined_at:.0%} of the stream, stable in {settle_4:.1f} s",
            "worker 1 leaves": f"at {left_at:.0%} (SIGTERM), stable in {settle_leave:.1f} s",
            **{
                f"worker {number}": f"counted {counted[number]:,.0f} ({shares[number]:.0%}), "
                f"already counted {duplicates[number]:,.0f}"
                for number in sorted(counted)
            },
            "Redis loss alarms": f"{sum(false_alarms.values()):.0f} partitions read again "
            "for a loss that did not happen (isales_redis_lost_writes_total)",
            "result": "exact (= reference model), still exact with nothing left to replay; "
            "every worker counted events",
            "committed": committed,
            "duration": f"{time.monotonic() - began:.0f} s",
        },
    )
    assert all(counted[number] > 0 for number in (1, 2, 3, 4)), counted
    assert sum(false_alarms.values()) == 0, f"a Redis loss alarm without a loss: {false_alarms}"
