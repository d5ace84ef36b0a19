"""statistics/progress (ours): a campaign's calls, connects and finished records per minute.

Events are counted by the engine's own counting (EventCounter, its script) at fixed moments of
a clock the test holds, so that some minutes are finished (in the progress stream) and one is
still open; the API, on the real Redis, reads them back. Signed, scoped and flow-controlled
like its siblings, with a budget of its own.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from isales_stats.api.errors import ErrorCode
from isales_stats.api.routes.progress import ProgressResponse
from isales_stats.client import PROGRESS_PATH, StatisticsClient
from isales_stats.core.events import event_from_json
from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess
from tests.support.app_client import serve
from tests.support.clock import SettableClock
from tests.support.counting import EventCounters
from tests.support.credentials import (
    ACCESS_KEY,
    SECRET_KEY,
    TENANT_A_KEY,
    TENANT_A_SECRET,
    TEST_KEYS,
)
from tests.support.events import CALL, call_event

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

VDN = 7
MINUTE = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def progress_path(vdn_id: int | str = VDN) -> str:
    return PROGRESS_PATH.format(vdn_id=vdn_id)


def calls(campaign: str, first: int, count: int, *, connected: int, final: int) -> list[Any]:
    """``count`` calls of distinct records, the first ``connected`` answered, the first
    ``final`` the records' last call."""
    return [
        event_from_json(
            call_event(
                CALL,
                vdnId=VDN,
                campaignId=campaign,
                dataId=f"d{first + n}",
                callId=f"c{first + n}",
                callStatus=6 if n < connected else 5,
                final=n < final,
            )
        )
        for n in range(count)
    ]


async def count_at_minutes(settings: Settings, counter: EventCounters) -> float:
    """Counts three batches of campaign C1, three minutes ago, a minute ago and now (each in
    its own minute of the worker's clock); returns the start of the current minute."""
    now = datetime.now().timestamp()
    this_minute = now // MINUTE * MINUTE
    clock = SettableClock(this_minute - 3 * MINUTE + 1)
    redis = Redis.from_url(settings.redis_url)
    try:
        engine = counter(redis, clock=clock)
        await engine.count(calls("C1", 0, 4, connected=2, final=1))
        clock.now = this_minute - MINUTE + 1
        await engine.count(calls("C1", 100, 3, connected=3, final=3))
        clock.now = this_minute + 1
        await engine.count(calls("C1", 200, 1, connected=0, final=0))
    finally:
        await redis.aclose()
    return this_minute


def by_minute(body: dict[str, Any]) -> dict[float, tuple[int, int, int]]:
    return {
        datetime.fromisoformat(point["startTime"]).timestamp(): (
            point["calls"],
            point["connects"],
            point["finished"],
        )
        for point in body["data"]["points"]
    }


async def test_every_minute_of_the_window_with_what_was_counted_in_it(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    this_minute = await count_at_minutes(test_settings, event_counter)
    async with serve(test_settings) as client:
        response = await client.get(progress_path(), params={"campaignId": "C1", "minutes": 10})
        default = await client.get(progress_path(), params={"campaignId": "C1"})
        unknown = await client.get(progress_path(), params={"campaignId": "nope", "minutes": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    ProgressResponse.model_validate(body)
    assert body["resultCode"] == "0200000"
    data = body["data"]
    assert (data["vdnId"], data["campaignId"], data["minutes"]) == (VDN, "C1", 10)
    assert data["timeZone"] == "+08:00"
    minutes = by_minute(body)
    assert len(minutes) == 10
    starts = list(minutes)
    assert starts == sorted(starts)
    assert all(later - earlier == MINUTE for earlier, later in itertools.pairwise(starts))
    # Finished minutes come from the stream, the open one from its hash; zeros between.
    assert minutes[this_minute - 3 * MINUTE] == (4, 2, 1)
    assert minutes[this_minute - 2 * MINUTE] == (0, 0, 0)
    assert minutes[this_minute - MINUTE] == (3, 3, 3)
    assert minutes[this_minute] == (1, 0, 0)
    assert sum(sum(counts) for counts in minutes.values()) == 7 + 9 + 1
    assert len(default.json()["data"]["points"]) == 60
    assert by_minute(default.json())[this_minute - 3 * MINUTE] == (4, 2, 1)
    assert set(by_minute(unknown.json()).values()) == {(0, 0, 0)}


BAD_REQUESTS = [
    ("", ErrorCode.EMPTY_PARAMETER, "campaignId is mandatory"),
    ("campaignId=", ErrorCode.EMPTY_PARAMETER, "campaignId is mandatory"),
    ("campaignId=C1&minutes=0", ErrorCode.WRONG_VALUE, "minutes must be from 1 to 1440"),
    ("campaignId=C1&minutes=1441", ErrorCode.WRONG_VALUE, "got '1441'"),
    ("campaignId=C1&minutes=-5", ErrorCode.WRONG_VALUE, "from 1 to 1440"),
    ("campaignId=C1&minutes=an%20hour", ErrorCode.WRONG_TYPE, "minutes must be an integer"),
    ("campaignId=C1&minutes=1&minutes=2", ErrorCode.TOO_MANY_PARAMETERS, "minutes is given 2"),
    ("campaignId=C1&batchId=b", ErrorCode.PARAMETER_ERROR, "parameters are campaignId and"),
    ("campaignId=" + "c" * 65, ErrorCode.TOO_LONG, "campaignId may be at most 64"),
    ("campaignId=a%7Bb", ErrorCode.INVALID_CHARACTERS, "may not hold control characters"),
    # The first failing check answers: the mandatory campaign before the minutes.
    ("minutes=0", ErrorCode.EMPTY_PARAMETER, "campaignId is mandatory"),
]


@pytest.mark.parametrize(("query", "code", "words"), BAD_REQUESTS)
async def test_bad_parameters_get_their_isales_code(
    test_settings: Settings, query: str, code: ErrorCode, words: str
) -> None:
    async with serve(test_settings) as client:
        response = await client.get(f"{progress_path()}?{query}")
        without_content_type = await client.get(
            progress_path(), params={"campaignId": "C1"}, headers={"Content-Type": ""}
        )
        bad_vdn = await client.get(f"{progress_path('abc')}?{query}")
    assert response.status_code == 400
    assert response.json()["resultCode"] == code.value
    assert words in response.json()["resultDesc"]
    assert without_content_type.json()["resultCode"] == ErrorCode.PARAMETER_ERROR.value
    assert bad_vdn.json()["resultCode"] == ErrorCode.WRONG_TYPE.value


@pytest.fixture
def guarded_settings(test_settings: Settings) -> Settings:
    return test_settings.model_copy(
        update={"auth_enabled": True, "auth_keys": SecretStr(TEST_KEYS), "rate_limit_requests": 2}
    )


async def test_signed_scoped_and_flow_controlled_on_a_budget_of_its_own(
    guarded_settings: Settings,
) -> None:
    query: dict[str, str | int] = {"campaignId": "C1", "minutes": 2}
    async with serve(guarded_settings) as unsigned:
        assert (await unsigned.get(progress_path(), params=query)).status_code == 401
    async with serve(
        guarded_settings, access_key=TENANT_A_KEY, secret_key=TENANT_A_SECRET
    ) as tenant:
        outside = await tenant.get(progress_path(), params=query)  # VDN 7 is not tenant A's
        assert outside.status_code == 401
        assert (await tenant.get(progress_path(100), params=query)).status_code == 200
    async with serve(guarded_settings, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as client:
        statuses = [(await client.get(progress_path(), params=query)).status_code for _ in range(3)]
        spent = await client.get(progress_path(), params=query)
        # The statistics interface of the same VDN keeps its own budget.
        statistics = await client.get(f"/rest/isales/v2/openapi/campaigns/{VDN}/statistics")
    assert statuses == [200, 200, 429]
    assert spent.headers["Retry-After"]
    assert spent.json()["resultCode"] == ErrorCode.TOO_FREQUENT.value
    assert statistics.status_code == 200


def test_the_client_reads_progress_from_a_real_api_process(
    guarded_settings: Settings, event_counter: EventCounters, tmp_path: Path
) -> None:
    this_minute = anyio.run(count_at_minutes, guarded_settings, event_counter)
    with (
        ApiProcess(guarded_settings, log_dir=tmp_path) as api,
        StatisticsClient(api.url, ACCESS_KEY, SECRET_KEY) as client,
    ):
        points = client.progress(VDN, "C1", minutes=5)
        request = client.build_progress_request(VDN, "C1")
    assert len(points) == 5
    counted = {datetime.fromisoformat(point["startTime"]).timestamp(): point for point in points}
    assert counted[this_minute - MINUTE]["connects"] == 3
    assert "minutes" not in request.url.params
    assert isinstance(request, httpx.Request)
