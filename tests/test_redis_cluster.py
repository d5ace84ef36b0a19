"""Redis Cluster: three primaries on loopback; the worker and the API unchanged but for the URL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from isales_stats.core.interface import ABANDON_RATE_PATH, PACING_PATH
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess
from tests.support.app_client import JSON_HEADERS, statistics_path
from tests.support.detail import expected_detail, read_detail
from tests.support.faults import assert_fully_committed
from tests.support.kafka_topics import publish
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.redis_cluster import RedisClusterServers
from tests.support.streams import campaign_stream
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture
def redis_cluster(test_settings: Settings, tmp_path: Path) -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers(
        test_settings.model_copy(update={"stack_dir": tmp_path / "cluster"})
    )
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


def test_worker_and_api_count_exactly_on_a_redis_cluster(
    test_settings: Settings, redis_cluster: RedisClusterServers, tmp_path: Path
) -> None:
    settings = test_settings.model_copy(update={"redis_url": redis_cluster.url})
    stream = campaign_stream(30_000, seed=31, now=datetime.now(UTC))
    expected = expected_detail(stream)
    publish(settings, stream)

    worker = ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0)
    with worker, ApiProcess(settings, log_dir=tmp_path, auth_enabled=False) as api:

        def served() -> list[dict[str, Any]]:
            body: list[dict[str, Any]] = httpx.get(
                f"{api.url}{statistics_path(1)}", headers=JSON_HEADERS, timeout=5
            ).json()["countDetail"]
            return body

        done = wait_for(lambda: served() == expected, 90)
        assert done, f"{worker.log()}\n{api.log()}"

        # The decisions' reads go one campaign per script call on a cluster too: their figures
        # agree with the statistics' (records and finished, every call in the life window).
        def data(path: str) -> dict[str, Any]:
            answer: dict[str, Any] = httpx.get(
                f"{api.url}{path}", headers=JSON_HEADERS, timeout=5
            ).json()["data"]
            return answer

        paced = data(PACING_PATH.format(vdn_id=1))["campaigns"]
        rates = data(ABANDON_RATE_PATH.format(vdn_id=1) + "?basis=all")["campaigns"]
        assert [(c["campaignId"], c["totalRecords"], c["finishedRecords"]) for c in paced] == [
            (c["campaignId"], c["totalCount"], c["totalFinishCount"]) for c in expected
        ]
        assert [(c["campaignId"], c["life"]["denominator"]) for c in rates] == [
            (c["campaignId"], c["totalCalledCount"]) for c in expected
        ]
        assert [[b["totalRecords"] for b in c["batches"]] for c in paced] == [
            [b["totalCount"] for b in c["batchDetail"]] for c in expected
        ]

    # The campaigns really are spread over the nodes: each node holds some campaign totals.
    layout = KeyLayout(settings.key_prefix)
    holding = set()
    for port in redis_cluster.ports:
        with redis.Redis(port=port) as node:
            if any(node.scan_iter(match=layout.campaign_totals(1, "*"))):
                holding.add(port)
    assert len(holding) >= 2


def test_the_cluster_grows_by_a_node_while_the_workers_are_paused(
    test_settings: Settings, redis_cluster: RedisClusterServers, tmp_path: Path
) -> None:
    """docs/capacity.md's way past one more node: stop the workers (events wait in Kafka),
    add a primary and move slots to it with their keys, start the workers again. Exact, the
    new node holds campaigns, the group commits everything."""
    settings = test_settings.model_copy(update={"redis_url": redis_cluster.url})
    stream = campaign_stream(20_000, campaigns=12, seed=37, now=datetime.now(UTC))
    first, second = stream[:10_000], stream[10_000:]
    publish(settings, first)
    with ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as worker:
        assert wait_for(lambda: read_detail(settings) == expected_detail(first), 90), worker.log()

    new_port = redis_cluster.grow()
    publish(settings, second)
    assert read_detail(settings) == expected_detail(first)  # read while the workers are paused
    port = free_port()
    with ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=port) as worker:
        assert wait_for(lambda: read_detail(settings) == expected_detail(stream), 90), worker.log()
        assert_fully_committed(settings, worker.log)
        # Each primary's memory is exported, the new one's too (IsalesRedisMemoryHigh per node).
        assert wait_for(lambda: memory_nodes(port) == set(redis_cluster.ports), 30)
    layout = KeyLayout(settings.key_prefix)
    with redis.Redis(port=new_port) as node:
        assert any(node.scan_iter(match=layout.campaign_totals(1, "*"))), "no campaign moved"


def memory_nodes(metrics_port: int) -> set[int]:
    """The ports of the nodes whose maxmemory a worker exports."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    return {
        int(line.split('node="', 1)[1].split('"', 1)[0].rsplit(":", 1)[1])
        for line in text.splitlines()
        if line.startswith("isales_redis_maxmemory_bytes{")
    }
