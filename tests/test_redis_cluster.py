"""Redis Cluster: three primaries on loopback; the worker and the API unchanged but for the URL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from isales_stats.commands.stack.redis import RedisClusterServers
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from tests.support.detail import expected_detail
from tests.support.kafka_topics import publish
from tests.support.processes import ServiceProcess
from tests.support.streams import campaign_stream
from tests.support.waiting import wait_for, wait_for_http

pytestmark = [pytest.mark.stack, pytest.mark.slow]

CLUSTER_PORTS = [17000, 17001, 17002]
API_PORT = 8767


@pytest.fixture
def redis_cluster(test_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    servers = RedisClusterServers(
        test_settings.model_copy(update={"stack_dir": tmp_path / "cluster"}), CLUSTER_PORTS
    )
    try:
        servers.start()
        yield test_settings.model_copy(update={"redis_url": servers.url})
    finally:
        servers.stop()


def test_worker_and_api_count_exactly_on_a_redis_cluster(
    redis_cluster: Settings, tmp_path: Path
) -> None:
    settings = redis_cluster
    stream = campaign_stream(30_000, seed=31, now=datetime.now(UTC))
    expected = expected_detail(stream)
    publish(settings, stream)

    url = f"http://127.0.0.1:{API_PORT}/rest/isales/v2/openapi/campaigns/1/statistics"

    def served() -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = httpx.get(
            url, headers={"Content-Type": "application/json"}, timeout=5
        ).json()["countDetail"]
        return body

    worker = ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0)
    api = ServiceProcess(
        settings, "api", "--port", str(API_PORT), log_dir=tmp_path, auth_enabled=False
    )
    with worker, api:
        wait_for_http(f"http://127.0.0.1:{API_PORT}/healthz")
        done = wait_for(lambda: served() == expected, 90)
        assert done, f"{worker.log()}\n{api.log()}"

    # The campaigns really are spread over the nodes: each node holds some campaign totals.
    layout = KeyLayout(settings.key_prefix)
    holding = set()
    for port in CLUSTER_PORTS:
        with redis.Redis(port=port) as node:
            if any(node.scan_iter(match=layout.campaign_totals(1, "*"))):
                holding.add(port)
    assert len(holding) >= 2
