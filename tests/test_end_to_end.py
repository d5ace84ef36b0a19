"""One path through every real part: kafka-python -> Kafka -> Faust worker -> Redis -> HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.publisher import EventPublisher
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for, wait_for_http

pytestmark = pytest.mark.stack

# The statistics API answers 0200001 to a request without the JSON Content-Type.
JSON_CONTENT = {"Content-Type": "application/json; charset=UTF-8"}
API_PORT = 8765


def sample_events(now_ms: int) -> list[dict[str, Any]]:
    common = {"vdnId": 1, "campaignId": "C100", "batchId": "B1"}
    events: list[dict[str, Any]] = []
    for n in range(20):
        record = {**common, "dataId": f"d{n}", "occurredAt": now_ms}
        events.append({"eventType": "data.added", **record})
        if n < 12:
            connected = n % 3 == 0
            events.append(
                {"eventType": "call.result", **record, "callId": f"call{n}",
                 "callStatus": 6 if connected else 5, "final": connected}
            )  # fmt: skip
    return events


def test_a_published_event_is_served_by_the_api(test_settings: Settings, tmp_path: Path) -> None:
    ensure_topics(test_settings)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    with EventPublisher(test_settings) as publisher:
        for event in sample_events(now_ms):
            publisher.publish(event)

    url = f"http://127.0.0.1:{API_PORT}/rest/isales/v2/openapi/campaigns/1/statistics"

    def count_detail() -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = httpx.get(url, timeout=5, headers=JSON_CONTENT).json()[
            "countDetail"
        ]
        return body

    with ServiceProcess(test_settings, "api", "--port", str(API_PORT), log_dir=tmp_path):
        wait_for_http(f"http://127.0.0.1:{API_PORT}/healthz")
        # Without a worker nothing is counted: the numbers below come from the worker alone.
        time.sleep(1)
        assert count_detail() == []

        worker = ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0)
        with worker:
            detail = wait_for(
                lambda: (d := count_detail()) and d[0]["totalCalledCount"] == 12 and d, 60
            )
            assert detail, f"the worker did not count the events in time:\n{worker.log()}"

    campaign = detail[0]
    expected = {
        "totalCount": 20, "unCallCount": 8, "totalCalledCount": 12, "totalCallSucc": 4,
        "totalFinishCount": 4, "dailyCalledCount": 12, "dailyCallSucc": 4,
        "dailyFinishCount": 4, "dailyCount": 20, "calledCount": 12, "finishCount": 4,
    }  # fmt: skip
    assert campaign["campaignId"] == "C100"
    assert {name: campaign[name] for name in expected} == expected
    assert [batch["batchId"] for batch in campaign["batchDetail"]] == ["B1"]
    assert {name: campaign["batchDetail"][0][name] for name in expected} == expected
