"""Fault row 3: a Kafka node killed with SIGKILL mid-stream and restarted later.

A private three-node KRaft cluster on loopback (tests/support/kafka_cluster.py, on free ports,
every node broker and controller, replication 3, ``min.insync.replicas`` 2). A worker counts
while a producer (kafka-python, ``acks="all"``, idempotent, retrying) sends 150,000 events at
5,000/s; at a quarter of the stream the node that coordinates the workers' consumer group
(the leader of ``__consumer_offsets``, which also leads about a third of the partitions) is
killed, at 60 % it is started again. The stream goes on being produced during the failure;
no send may fail, the worker must survive, and the statistics must be exactly the model's,
and still be once every partition is counted and committed to its log end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

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
    wait_until_exact,
)
from tests.support.kafka_cluster import KafkaCluster
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.streams import campaign_stream, encoded
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.faults]

STREAM_EVENTS = 150_000
RATE = 5_000
REPLICAS = 3


@pytest.fixture
def kafka_cluster(local_stack: Settings) -> Iterator[KafkaCluster]:
    """Three nodes, started fresh; stopped (by pid file) whatever the test does."""
    cluster = KafkaCluster.for_settings(local_stack)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def describe(settings: Settings, topic: str) -> list[dict[str, Any]]:
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=5000
    )
    try:
        partitions: list[dict[str, Any]] = admin.describe_topics([topic])[0]["partitions"]
        return partitions
    finally:
        admin.close()


def all_in_sync(settings: Settings) -> bool:
    try:
        partitions = describe(settings, settings.call_events_topic)
    except Exception:  # a node still starting: not in sync yet
        return False
    return all(len(p["isr_nodes"]) == REPLICAS for p in partitions)


def test_a_kafka_node_killed_and_restarted_mid_stream_loses_nothing(
    kafka_cluster: KafkaCluster, test_settings: Settings, tmp_path: Path
) -> None:
    began = time.monotonic()
    settings = test_settings.model_copy(update={"kafka_url": kafka_cluster.kafka_url})
    seed = fault_seed("row 3: Kafka node lost")
    stream = campaign_stream(STREAM_EVENTS, campaigns=12, seed=seed, now=datetime.now(UTC))
    expected = expected_detail(stream)
    ensure_topics(settings, replication=REPLICAS)

    metrics_port = free_port()
    worker = ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=metrics_port)
    with worker:
        wait_for_group(settings, 1, timeout=120)
        victim = describe(settings, "__consumer_offsets")[0]["leader_id"]
        led = sorted(
            p["partition_index"]
            for p in describe(settings, settings.call_events_topic)
            if p["leader_id"] == victim
        )
        producer = PacedProducer(settings, encoded(stream), RATE).start()

        producer.wait_for_fraction(0.25)
        kafka_cluster.kill(victim)
        killed = time.monotonic()
        print(f"[row 3] kill -9 of node {victim} (group coordinator, leads {led})", flush=True)

        producer.wait_for_fraction(0.6)
        down_for = time.monotonic() - killed
        sent_while_down = producer.sent - int(0.25 * len(stream))
        restarting = time.monotonic()
        kafka_cluster.restart(victim)
        back_in = time.monotonic() - restarting
        print(f"[row 3] node {victim} restarted after {down_for:.1f} s down", flush=True)

        producer.join(timeout=300)
        assert not producer.failures, producer.failures[:5]
        exact = wait_until_exact(settings, expected, timeout=180)
        assert exact, f"counts after losing a Kafka node differ from the model:\n{worker.log()}"
        in_sync = wait_for(lambda: all_in_sync(settings), timeout=120, interval=1)
        in_sync_after = time.monotonic() - restarting
        assert in_sync, "the restarted node did not catch up (ISR < 3)"
        committed = assert_replay_over(settings, worker.log)
        assert read_detail(settings) == expected, "a replay changed the counts"
        assert worker.process is not None
        assert worker.process.poll() is None, f"the worker died:\n{worker.log()}"
        counted = scrape_metric(metrics_port, "isales_events_counted_total")
        retries = scrape_metric(metrics_port, "isales_counting_retries_total")

    figures(
        "row 3: Kafka node lost (3-node KRaft, RF 3, min ISR 2)",
        {
            "seed": seed,
            "events": f"{len(stream):,} at {RATE:,}/s, acks=all (produced in "
            f"{producer.seconds:.1f} s, {producer.acknowledged:,} acknowledged, 0 failed)",
            "killed": f"node {victim} at 25 % of the stream: group coordinator, "
            f"leader of {len(led)} of 12 partitions",
            "down": f"{down_for:.1f} s, {sent_while_down:,} events produced meanwhile",
            "restart": f"node answering again in {back_in:.1f} s, all partitions back to "
            f"ISR {REPLICAS} {in_sync_after:.1f} s after the restart",
            "worker": f"same process throughout, counted {counted:,.0f} events, "
            f"{retries:.0f} Redis retries",
            "result": "exact (= reference model), still exact with nothing left to replay",
            "committed": committed,
            "duration": f"{time.monotonic() - began:.0f} s after the cluster was up",
        },
    )
