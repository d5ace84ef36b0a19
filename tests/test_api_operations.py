"""Operations: probes, Prometheus metrics, JSON access logs, the OpenAPI document and /docs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from isales_stats.api.errors import UNAVAILABLE_MESSAGE, ErrorCode
from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess
from tests.support.app_client import JSON_HEADERS, serve, serve_with_operations, statistics_path
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

# The template the metrics and the document name the route by.
ROUTE = "/rest/isales/v2/openapi/campaigns/{vdnId}/statistics"
# Nothing listens on port 1: a Redis that is down, as far as the API can tell.
DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_probes(test_settings: Settings) -> None:
    async with serve(test_settings) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json() == {"status": "ok"}


async def test_without_redis_the_api_is_alive_not_ready_and_answers_503(
    test_settings: Settings,
) -> None:
    down = test_settings.model_copy(update={"redis_url": DEAD_REDIS, "rate_limit_requests": 10})
    async with serve(down) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        statistics = await client.get(statistics_path(1))
    assert ready.status_code == 503
    assert ready.json() == {"status": "redis unreachable"}
    assert statistics.status_code == 503
    assert statistics.json()["resultCode"] == ErrorCode.UNAVAILABLE.value
    assert statistics.json()["resultDesc"] == UNAVAILABLE_MESSAGE
    assert statistics.headers["Retry-After"] == "1"


async def test_metrics_count_requests_by_route_and_status(test_settings: Settings) -> None:
    async with serve_with_operations(test_settings) as (client, operations):
        await client.get(statistics_path(1))
        await client.get(statistics_path("x"))
        await client.get("/no/such/path")
        text = (await operations.get("/metrics")).text
    for sample in (
        f'isales_api_requests_total{{method="GET",route="{ROUTE}",status="200"}}',
        f'isales_api_requests_total{{method="GET",route="{ROUTE}",status="400"}}',
        'isales_api_requests_total{method="GET",route="unmatched",status="404"}',
        f'isales_api_request_seconds_bucket{{le="0.003",route="{ROUTE}"}}',
        "isales_api_rate_limited_total",
        "# TYPE isales_api_auth_failures_total counter",
    ):
        assert sample in text, sample


async def test_every_request_is_one_json_access_line(
    test_settings: Settings, access_lines: list[dict[str, Any]]
) -> None:
    async with serve(test_settings, client_address="10.1.2.3") as client:
        await client.get(statistics_path(1) + "?campaignId=C%201")
    (line,) = access_lines
    assert line["method"] == "GET"
    assert line["path"] == "/rest/isales/v2/openapi/campaigns/1/statistics"
    assert line["query"] == "campaignId=C%201"
    assert line["route"] == ROUTE
    assert line["status"] == 200
    assert line["client"] == "10.1.2.3"
    assert isinstance(line["durationMs"], int | float)  # milliseconds: a benchmark times it
    assert line["durationMs"] >= 0
    assert line["time"].endswith("+00:00")


async def test_the_access_log_can_be_switched_off(
    test_settings: Settings, access_lines: list[dict[str, Any]]
) -> None:
    async with serve(test_settings.model_copy(update={"access_log": False})) as client:
        await client.get("/healthz")
    assert access_lines == []


async def test_the_openapi_document_describes_every_answer(test_settings: Settings) -> None:
    async with serve_with_operations(test_settings) as (_, operations):
        document = (await operations.get("/openapi.json")).json()
        docs = await operations.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    operation = document["paths"][ROUTE]["get"]
    schemas = {
        status: answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        for status, answer in operation["responses"].items()
    }
    assert schemas == {
        "200": "StatisticsResponse",
        "400": "ErrorEnvelope",
        "401": "ErrorEnvelope",
        "429": "ErrorEnvelope",
        "503": "ErrorEnvelope",
    }
    assert "Retry-After" in operation["responses"]["429"]["headers"]
    assert operation["security"] == [{"auth-v2": []}]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert parameters["vdnId"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 9999}
    assert parameters["campaignId"]["schema"]["maxLength"] == 64
    assert parameters["batchId"]["schema"]["maxLength"] == 200
    campaign = document["components"]["schemas"]["CampaignStatistics"]
    assert campaign["additionalProperties"] is False
    assert len(campaign["required"]) == 13  # eleven counters, campaignId and batchDetail
    examples = operation["responses"]["400"]["content"]["application/json"]["examples"]
    assert {example["value"]["resultCode"] for example in examples.values()} == {
        "0200001", "02000002", "02000003", "02000006", "02000007", "02000009", "02000011",
    }  # fmt: skip


def test_a_real_api_process_writes_json_access_lines(
    test_settings: Settings, tmp_path: Path
) -> None:
    with ApiProcess(test_settings, log_dir=tmp_path) as api:
        url = f"{api.url}{statistics_path(1)}"
        assert httpx.get(url, headers=JSON_HEADERS).status_code == 200

        def statistics_line() -> dict[str, Any] | None:
            for text in api.log().splitlines():
                line: dict[str, Any] = json.loads(text) if text.startswith("{") else {}
                if line.get("route") == ROUTE:
                    return line
            return None

        line = wait_for(statistics_line, 10)
    assert line is not None, api.log()
    assert line["status"] == 200
