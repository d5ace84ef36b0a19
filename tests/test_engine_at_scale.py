"""Large streams through the real parts, against the reference model.

- 60,000 events with duplicates: kafka-python -> Kafka -> a Faust worker -> Redis -> HTTP.
- 120,000 events while the worker is killed with SIGKILL twice and restarted: still exact.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess
from tests.support.app_client import JSON_HEADERS, statistics_path
from tests.support.detail import distinct_identities_counted, expected_detail, read_detail
from tests.support.kafka_topics import publish
from tests.support.processes import ServiceProcess
from tests.support.streams import campaign_stream
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_sixty_thousand_events_through_kafka_worker_and_http(
    test_settings: Settings, tmp_path: Path
) -> None:
    stream = campaign_stream(60_000, seed=11, now=datetime.now(UTC))
    expected = expected_detail(stream)
    publish(test_settings, stream)

    worker = ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0)
    with worker, ApiProcess(test_settings, log_dir=tmp_path) as api:
        url = f"{api.url}{statistics_path(1)}"
        served = wait_for(
            lambda: (
                httpx.get(url, timeout=5, headers=JSON_HEADERS).json()["countDetail"] == expected
            ),
            120,
        )
        body = httpx.get(url, timeout=5, headers=JSON_HEADERS).json()["countDetail"]
    assert served, f"served numbers differ from the model:\n{worker.log()}"
    assert body == expected


def test_two_kill_nines_in_the_middle_of_the_stream_change_nothing(
    test_settings: Settings, tmp_path: Path
) -> None:
    stream = campaign_stream(120_000, seed=12, now=datetime.now(UTC))
    expected = expected_detail(stream)
    campaigns = [entry["campaignId"] for entry in expected]
    total = len({(e["dataId"]) for e in stream}) + len(
        {e["callId"] for e in stream if "callId" in e}
    )
    publish(test_settings, stream)

    for stop_at in (0.25, 0.6):
        goal = stop_at * total
        worker = ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0)
        worker.start()
        reached = wait_for(
            lambda: distinct_identities_counted(test_settings, campaigns) >= goal,  # noqa: B023
            timeout=120,
            interval=0.02,
        )
        worker.kill()
        assert reached, f"the worker made no progress:\n{worker.log()}"
        assert distinct_identities_counted(test_settings, campaigns) < total, "killed too late"

    with ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as last:
        done = wait_for(lambda: read_detail(test_settings) == expected, timeout=120, interval=0.5)
        assert done, f"numbers after two crashes differ from the model:\n{last.log()}"
        time.sleep(2)  # anything still replayed after that must change nothing
    assert read_detail(test_settings) == expected
