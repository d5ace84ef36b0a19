"""statistics/abandonrate and statistics/pacing (ours): answers, errors, scope and budgets.

The scopes' windows are written into the real Redis in the counting script's format
(tests/support/windows.py), as counted at a fixed moment; the app, served in-process on the
real Redis, reads them with its clock set to that moment, so that every figure below is worked
out by hand. The end-to-end test through Kafka and the worker is in tests/test_end_to_end.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from isales_stats.api.errors import ErrorCode
from isales_stats.api.main import create_app
from isales_stats.api.routes.abandon_rate import AbandonRateResponse
from isales_stats.api.routes.pacing import PacingResponse
from isales_stats.client import ABANDON_RATE_PATH, PACING_PATH, StatisticsClient
from isales_stats.commands import cli
from isales_stats.core.decisions import Counts
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess
from tests.support.app_client import serve
from tests.support.clock import GMT8, SettableClock
from tests.support.credentials import (
    ACCESS_KEY,
    SECRET_KEY,
    TENANT_A_KEY,
    TENANT_A_SECRET,
    TEST_KEYS,
)
from tests.support.windows import Bucketed, write_scope

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

VDN = 7
NOW = datetime(2026, 12, 8, 10, 15, 30, tzinfo=GMT8)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def abandon_path(vdn_id: int | str = VDN) -> str:
    return ABANDON_RATE_PATH.format(vdn_id=vdn_id)


def pacing_path(vdn_id: int | str = VDN) -> str:
    return PACING_PATH.format(vdn_id=vdn_id)


def at(moment: datetime, calls: int, connects: int, abandoned: int, finished: int) -> Bucketed:
    return Bucketed(int(moment.timestamp() * 1000), Counts(calls, connects, abandoned, finished))


# Campaign C1 (100 records) and its batches b1 (50 records, all finished) and b2 (7 records, no
# call yet); C2 (5 records), whose only calls were 20 hours ago (yesterday); C3, no record.
SCOPES: list[tuple[str, str | None, int, list[Bucketed]]] = [
    ("C1", None, 100, [
        at(NOW, 100, 60, 1, 10),
        at(NOW - timedelta(days=3), 200, 95, 5, 20),
        at(NOW - timedelta(days=40), 100, 48, 2, 5),
    ]),
    ("C1", "b1", 50, [at(NOW - timedelta(minutes=2), 600, 488, 12, 50)]),
    ("C1", "b2", 7, []),
    ("C2", None, 5, [at(NOW - timedelta(hours=20), 10, 7, 3, 1)]),
    ("C3", None, 0, []),
]  # fmt: skip


async def write_scopes(settings: Settings, counted_at: datetime = NOW) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        for campaign, batch, records, calls in SCOPES:
            await write_scope(
                redis,
                KeyLayout(settings.key_prefix),
                VDN,
                campaign,
                calls,
                counted_at_ms=int(counted_at.timestamp() * 1000),
                zone=GMT8,
                records=records,
                batch_id=batch,
            )
    finally:
        await redis.aclose()


@asynccontextmanager
async def serve_at(
    settings: Settings, moment: datetime, **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app, its clock held at ``moment`` (the readers are made at their first request, from
    the context set here)."""
    app = create_app(settings)
    async with serve(app, **options) as client:
        app.state.context = dataclasses.replace(
            app.state.context, clock=SettableClock(moment.timestamp())
        )
        yield client


def window(abandoned: int, denominator: int, rate: float | None, status: str) -> dict[str, Any]:
    return {"abandoned": abandoned, "denominator": denominator, "ratePercent": rate,
            "status": status}  # fmt: skip


ZERO_WINDOW = window(0, 0, None, "ok")


async def test_abandon_rates_per_window_scope_and_total(test_settings: Settings) -> None:
    await write_scopes(test_settings)
    async with serve_at(test_settings, NOW) as client:
        response = await client.get(abandon_path())
        every_call = await client.get(abandon_path(), params={"basis": "all"})
        one_batch = await client.get(abandon_path(), params={"campaignId": "C1", "batchId": "b1"})
        unknown = await client.get(abandon_path(), params={"campaignId": "nope"})
    assert response.status_code == 200, response.text
    body = response.json()
    AbandonRateResponse.model_validate(body)
    data = body["data"]
    assert {name: data[name] for name in ("vdnId", "timeZone", "basis")} == {
        "vdnId": VDN,
        "timeZone": "+08:00",
        "basis": "live",
    }
    assert (data["limitPercent"], data["warningPercent"]) == (3.0, 2.4)
    c1, c2, c3 = data["campaigns"]
    assert [c1["campaignId"], c2["campaignId"], c3["campaignId"]] == ["C1", "C2", "C3"]
    # C1: 1 of 61 live calls today; 6 of 161 over 30 days (the call of 40 days ago left).
    assert c1["today"] == window(1, 61, 1.64, "ok")
    assert c1["rolling24h"] == window(1, 61, 1.64, "ok")
    assert c1["rolling30d"] == window(6, 161, 3.73, "over")
    assert c1["life"] == window(8, 211, 3.79, "over")
    b1, b2 = c1["batches"]
    # 12 of 500 is the warning fraction of the 3 % limit exactly: a warning.
    assert (b1["batchId"], b1["today"]) == ("b1", window(12, 500, 2.4, "warning"))
    assert b2 == {"batchId": "b2", **dict.fromkeys(("today", "rolling24h", "rolling30d",
                                                     "life"), ZERO_WINDOW)}  # fmt: skip
    # C2's calls were yesterday afternoon: in the 24 hours, not today.
    assert (c2["today"], c2["rolling24h"]) == (ZERO_WINDOW, window(3, 10, 30.0, "over"))
    assert c2["batches"] == []
    assert c3["life"] == ZERO_WINDOW
    # The total adds the campaigns (not their batches) up.
    assert data["total"]["rolling24h"] == window(4, 71, 5.63, "over")
    assert data["total"]["life"] == window(11, 221, 4.98, "over")
    every = every_call.json()["data"]
    assert every["basis"] == "all"
    assert every["campaigns"][0]["rolling30d"] == window(6, 300, 2.0, "ok")
    only = one_batch.json()["data"]
    assert [batch["batchId"] for batch in only["campaigns"][0]["batches"]] == ["b1"]
    assert only["total"] == {name: c1[name] for name in only["total"]}
    assert unknown.json()["data"]["campaigns"] == []
    assert unknown.json()["data"]["total"]["life"] == ZERO_WINDOW


async def test_a_vdns_own_limit_and_warning_fraction(test_settings: Settings) -> None:
    await write_scopes(test_settings)
    settings = test_settings.model_copy(
        update={"vdn_abandon_limits": {VDN: 4.0}, "abandon_warning_fraction": 0.5}
    )
    async with serve_at(settings, NOW) as client:
        data = (await client.get(abandon_path(), params={"campaignId": "C1"})).json()["data"]
    assert (data["limitPercent"], data["warningPercent"]) == (4.0, 2.0)
    assert data["campaigns"][0]["rolling30d"]["status"] == "warning"
    assert data["campaigns"][0]["today"]["status"] == "ok"


def pace(
    records: int, finished: int, state: str, last: str | None, **figures: Any
) -> dict[str, Any]:
    """The figures of a pace that the tests below spell every time, then ``figures``."""
    return {
        "totalRecords": records,
        "finishedRecords": finished,
        "remainingRecords": max(records - finished, 0),
        "state": state,
        "lastCallAt": last,
        **figures,
    }


def picked(answer: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {name: answer[name] for name in expected}


async def test_pacing_states_rates_and_eta(test_settings: Settings) -> None:
    await write_scopes(test_settings)
    async with serve_at(test_settings, NOW) as client:
        response = await client.get(pacing_path())
        later = await client.get(pacing_path(), params={"campaignId": "C1"})
    assert response.status_code == 200, response.text
    body = response.json()
    PacingResponse.model_validate(body)
    data = body["data"]
    assert (data["now"], data["stallMinutes"], data["timeZone"]) == (
        "2026-12-08T10:15:30+08:00",
        10,
        "+08:00",
    )
    c1, c2, c3 = data["campaigns"]
    # 65 records remain; the last 5, 15, 60 minutes finished 10 each: 2, 0.67 and 0.17 a
    # minute, so 32.5 minutes at the fastest and 6.5 hours at the slowest.
    expected_c1 = pace(
        100,
        35,
        "dialling",
        "2026-12-08T10:15:00+08:00",
        percentComplete=35.0,
        callsPerMinute={"last5": 20.0, "last15": 6.67, "last60": 1.67},
        finishedPerMinute={"last5": 2.0, "last15": 0.67, "last60": 0.17},
        connectRate={"today": 60.0, "life": 50.75},
        attemptsPerFinishedRecord=11.43,
        eta={"earliest": "2026-12-08T10:48:00+08:00", "latest": "2026-12-08T16:45:30+08:00"},
        etaReason=None,
    )
    assert picked(c1, expected_c1) == expected_c1
    b1, b2 = c1["batches"]
    assert picked(b1, pace(50, 50, "finished", "2026-12-08T10:13:00+08:00")) == pace(
        50, 50, "finished", "2026-12-08T10:13:00+08:00"
    )
    assert (b1["percentComplete"], b1["eta"], b1["etaReason"]) == (100.0, None, "finished")
    assert (b2["state"], b2["eta"], b2["etaReason"]) == ("notStarted", None, "not started")
    assert b2["connectRate"] == {"today": None, "life": None}
    assert b2["attemptsPerFinishedRecord"] is None
    assert (c2["state"], c2["etaReason"], c2["lastCallAt"]) == (
        "stalled",
        "stalled",
        "2026-12-07T14:15:00+08:00",
    )
    assert (c3["state"], c3["percentComplete"], c3["etaReason"]) == ("empty", None, "not started")
    total = data["total"]
    assert picked(total, pace(105, 36, "dialling", "2026-12-08T10:15:00+08:00")) == pace(
        105, 36, "dialling", "2026-12-08T10:15:00+08:00"
    )
    assert total["eta"]["earliest"] == "2026-12-08T10:50:00+08:00"  # 69 at 2 a minute
    assert later.json()["data"]["total"] == {
        name: value for name, value in c1.items() if name not in ("campaignId", "batches")
    }


async def test_pacing_read_later_sees_the_campaign_stall(test_settings: Settings) -> None:
    await write_scopes(test_settings)
    async with serve_at(test_settings, NOW + timedelta(minutes=10)) as client:
        data = (await client.get(pacing_path(), params={"campaignId": "C1"})).json()["data"]
    c1 = data["campaigns"][0]
    assert (c1["state"], c1["eta"], c1["etaReason"]) == ("stalled", None, "stalled")
    assert c1["callsPerMinute"] == {"last5": 0.0, "last15": 6.67, "last60": 1.67}
    assert data["now"] == "2026-12-08T10:25:30+08:00"


BAD_REQUESTS = [
    (abandon_path(), "basis=answered", ErrorCode.WRONG_VALUE, "basis must be live or all"),
    (abandon_path(), "basis=live&basis=all", ErrorCode.TOO_MANY_PARAMETERS, "basis is given 2"),
    (abandon_path(), "batchId=b1", ErrorCode.WRONG_COMBINATION, "batchId is given without"),
    (abandon_path(), "minutes=5", ErrorCode.PARAMETER_ERROR, "campaignId, batchId and basis"),
    (abandon_path(), "campaignId=" + "c" * 65, ErrorCode.TOO_LONG, "at most 64"),
    (abandon_path(), "campaignId=a%7Bb", ErrorCode.INVALID_CHARACTERS, "control characters"),
    (abandon_path("abc"), "", ErrorCode.WRONG_TYPE, "vdnId must be an integer"),
    (abandon_path(10_000), "", ErrorCode.WRONG_VALUE, "vdnId must be from 1 to 9999"),
    (pacing_path(), "basis=all", ErrorCode.PARAMETER_ERROR, "are campaignId and batchId"),
    (pacing_path(), "batchId=b1", ErrorCode.WRONG_COMBINATION, "batchId is given without"),
    (pacing_path(), "campaignId=a&campaignId=b", ErrorCode.TOO_MANY_PARAMETERS, "given 2"),
    (pacing_path("abc"), "", ErrorCode.WRONG_TYPE, "vdnId must be an integer"),
    # The first failing check answers: an unknown parameter before a wrong basis.
    (abandon_path(), "basis=x&nope=1", ErrorCode.PARAMETER_ERROR, "unknown query parameter"),
]


@pytest.mark.parametrize(("path", "query", "code", "words"), BAD_REQUESTS)
async def test_bad_parameters_get_their_isales_code(
    test_settings: Settings, path: str, query: str, code: ErrorCode, words: str
) -> None:
    async with serve(test_settings) as client:
        response = await client.get(f"{path}?{query}")
        without_content_type = await client.get(path, headers={"Content-Type": ""})
    assert response.status_code == 400
    assert response.json()["resultCode"] == code.value
    assert words in response.json()["resultDesc"]
    if "abc" not in path and "10000" not in path:
        assert without_content_type.json()["resultCode"] == ErrorCode.PARAMETER_ERROR.value


@pytest.fixture
def guarded_settings(test_settings: Settings) -> Settings:
    return test_settings.model_copy(
        update={"auth_enabled": True, "auth_keys": SecretStr(TEST_KEYS), "rate_limit_requests": 2}
    )


@pytest.mark.parametrize("path", [abandon_path(), pacing_path()])
async def test_signed_scoped_and_flow_controlled_on_a_budget_of_its_own(
    guarded_settings: Settings, path: str
) -> None:
    other = pacing_path() if path == abandon_path() else abandon_path()
    async with serve(guarded_settings) as unsigned:
        assert (await unsigned.get(path)).status_code == 401
    async with serve(
        guarded_settings, access_key=TENANT_A_KEY, secret_key=TENANT_A_SECRET
    ) as tenant:
        assert (await tenant.get(path)).status_code == 401  # VDN 7 is not tenant A's
        assert (await tenant.get(path.replace(f"/{VDN}/", "/100/"))).status_code == 200
    async with serve(guarded_settings, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as client:
        statuses = [(await client.get(path)).status_code for _ in range(3)]
        spent = await client.get(path)
        # The other decision interface, and the statistics, keep their own budgets.
        sibling = await client.get(other)
        statistics = await client.get(f"/rest/isales/v2/openapi/campaigns/{VDN}/statistics")
    assert statuses == [200, 200, 429]
    assert spent.headers["Retry-After"]
    assert spent.json()["resultCode"] == ErrorCode.TOO_FREQUENT.value
    assert (sibling.status_code, statistics.status_code) == (200, 200)


def test_the_client_and_the_cli_read_both_from_a_real_api_process(
    guarded_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A real process, on the real clock: the windows are written as counted just now."""
    guarded_settings = guarded_settings.model_copy(update={"rate_limit_requests": 100})
    anyio.run(write_scopes, guarded_settings, datetime.now(GMT8))
    signing = Settings(client_access_key=ACCESS_KEY, client_secret_key=SecretStr(SECRET_KEY))
    monkeypatch.setattr(cli, "read_settings", lambda: signing)
    with (
        ApiProcess(guarded_settings, log_dir=tmp_path) as api,
        StatisticsClient(api.url, ACCESS_KEY, SECRET_KEY) as client,
    ):
        rates = client.abandon_rate(VDN)
        every = client.abandon_rate(VDN, "C1", "b1", basis="all")
        paces = client.pacing(VDN, "C1")
        request = client.build_abandon_rate_request(VDN)
        capsys.readouterr()
        query = ["query", "--vdn", str(VDN), "--url", api.url]
        assert cli.main([*query, "--campaign", "C2", "--abandon-rate", "--basis", "all"]) == 0
        printed_rates = json.loads(capsys.readouterr().out)["data"]
        assert cli.main([*query, "--pacing"]) == 0
        printed_paces = json.loads(capsys.readouterr().out)["data"]
    assert [campaign["campaignId"] for campaign in rates["campaigns"]] == ["C1", "C2", "C3"]
    assert rates["campaigns"][0]["life"] == window(8, 211, 3.79, "over")
    assert every["basis"] == "all"
    assert every["campaigns"][0]["batches"][0]["life"] == window(12, 600, 2.0, "ok")
    assert paces["total"]["totalRecords"] == 100
    assert [batch["batchId"] for batch in paces["campaigns"][0]["batches"]] == ["b1", "b2"]
    assert dict(request.url.params) == {}
    assert printed_rates["basis"] == "all"
    assert printed_rates["campaigns"][0]["life"] == window(3, 10, 30.0, "over")
    assert printed_paces["total"]["totalRecords"] == 105
