"""One path through every real part: kafka-python -> Kafka -> Faust worker -> Redis -> HTTP.

Before the worker starts, every event is in Kafka, the workers' consumer group has committed
nothing, and the API (up and answering) serves no numbers: what it serves afterwards was
counted by the worker, from Kafka, and by nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.publisher import EventPublisher
from tests.support.api_process import ApiProcess
from tests.support.app_client import JSON_HEADERS, statistics_path
from tests.support.clock import now_ms
from tests.support.events import ADDED, CALL, call_event
from tests.support.kafka_topics import committed_offsets, read_topic
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack


def sample_events(moment_ms: int) -> list[dict[str, Any]]:
    """20 records of campaign C100, batch B1; 12 of them called once, 4 of those connected."""
    events: list[dict[str, Any]] = []
    for n in range(20):
        record = {"campaignId": "C100", "batchId": "B1", "dataId": f"d{n}", "occurredAt": moment_ms}
        events.append(call_event(ADDED, **record))
        if n < 12:
            connected = n % 3 == 0
            events.append(
                call_event(
                    CALL,
                    **record,
                    callId=f"call{n}",
                    callStatus=6 if connected else 5,
                    final=connected,
                )
            )
    return events


def identity(event: dict[str, Any]) -> tuple[str, str]:
    return event["dataId"], event["eventType"]


def test_a_published_event_is_served_by_the_api(test_settings: Settings, tmp_path: Path) -> None:
    ensure_topics(test_settings)
    events = sample_events(now_ms())
    with EventPublisher(test_settings) as publisher:
        for event in events:
            publisher.publish(event)
    # All of them are in Kafka (in the contract's form), and no worker has consumed any.
    landed = sorted((value for _key, value in read_topic(test_settings)), key=identity)
    assert landed == sorted(({"version": 1, **event} for event in events), key=identity)
    assert committed_offsets(test_settings) == {}

    with ApiProcess(test_settings, log_dir=tmp_path) as api:
        url = f"{api.url}{statistics_path(1)}"

        def count_detail() -> list[dict[str, Any]]:
            body: list[dict[str, Any]] = httpx.get(url, timeout=5, headers=JSON_HEADERS).json()[
                "countDetail"
            ]
            return body

        # Without a worker nothing is counted: the numbers below come from the worker alone.
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
