"""failcategorystatistics (iSales) and the statistics history (ours): answers, errors, zones.

The expected numbers come from the reference model (isales_stats/core/reference_model.py), fed
the events that EventCounter counted into Redis; the property test of the same counters over
shuffles, duplicates and midnights is in tests/test_counting.py.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from isales_stats.api.errors import ErrorCode
from isales_stats.api.schemas import ErrorEnvelope, FailCategoryResponse, HistoryResponse
from isales_stats.core.days import hours_in, today_in
from isales_stats.core.interface import FAIL_CATEGORY_PATH, HISTORY_PATH, STATISTICS_PATH
from isales_stats.core.reference_model import reference_statistics
from isales_stats.core.settings import Settings
from tests.support.app_client import serve
from tests.support.counting import count_events
from tests.support.events import ADDED, CALL, call_event

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

VDN = 4
DST_VDN = 5
NEW_YORK = ZoneInfo("America/New_York")
SUCCESS = {
    "resultCode": "0200000",
    "resultDesc": "Query Success!",
    "returnCode": "0200000",
    "returnDesc": "Query Success!",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def zoned_settings(test_settings: Settings) -> Settings:
    """VDN 5 in New York, and a year of days kept: its last clock changes are within it."""
    return test_settings.model_copy(
        update={"vdn_time_zones": {DST_VDN: "America/New_York"}, "daily_retention_days": 400}
    )


def fail_category_path(vdn_id: int | str) -> str:
    return FAIL_CATEGORY_PATH.format(vdn_id=vdn_id)


def history_path(vdn_id: int | str) -> str:
    return HISTORY_PATH.format(vdn_id=vdn_id)


def days_of_calls(today: date, seed: int = 3) -> list[dict[str, Any]]:
    """Two campaigns' records called over the last four days in GMT+08:00, some calls failing
    with a failCode, some without one, each published twice (duplicates count once)."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for record in range(60):
        campaign = rng.choice(["C1", "C2"])
        batch = rng.choice(["B1", "B2", None])
        day = today - timedelta(days=rng.randrange(4))
        moment = datetime(day.year, day.month, day.day, rng.randrange(8, 22), tzinfo=UTC)
        common = {"vdnId": VDN, "campaignId": campaign, "dataId": f"d{record}", "batchId": batch}
        at = int((moment - timedelta(hours=8)).timestamp() * 1000)  # that hour in GMT+08:00
        events.append(call_event(ADDED, **common, occurredAt=at))
        for attempt in range(rng.randrange(1, 4)):
            failed = rng.random() < 0.6
            events.append(
                call_event(
                    CALL,
                    **common,
                    callId=f"r{record}a{attempt}",
                    callStatus=5 if failed else 6,
                    final=not failed or attempt == 2,
                    failCode=rng.choice(["110", "120", "130", None]) if failed else None,
                    occurredAt=at + attempt * 3_600_000 + rng.randrange(3_600_000),
                )
            )
    return events + events


async def get_json(client: httpx.AsyncClient, url: str, status: int = 200) -> dict[str, Any]:
    response = await client.get(url)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_failed_calls_by_failcode_for_each_day_of_the_range(
    test_settings: Settings,
) -> None:
    today = today_in(test_settings.time_zone_of(VDN))
    events = days_of_calls(today)
    await count_events(test_settings, events)
    model = reference_statistics(events)
    first = today - timedelta(days=5)
    days = [first + timedelta(days=n) for n in range(6)]
    async with serve(test_settings) as client:
        ranged = await get_json(
            client, f"{fail_category_path(VDN)}?campaignId=C1&startDate={first}&endDate={today}"
        )
        today_only = await get_json(client, f"{fail_category_path(VDN)}?campaignId=C2")
        unknown = await get_json(
            client, f"{fail_category_path(VDN)}?campaignId=nope&startDate={first}&endDate={today}"
        )
    FailCategoryResponse.model_validate(ranged)
    assert ranged == {
        **SUCCESS,
        "data": [
            {"statDate": day.isoformat(), "failData": model.fail_data(VDN, "C1", day)}
            for day in days
        ],
    }
    assert sum(sum(day["failData"].values()) for day in ranged["data"]) > 10  # something failed
    assert any("" in day["failData"] for day in ranged["data"])  # failed without a failCode
    assert today_only["data"] == [
        {"statDate": today.isoformat(), "failData": model.fail_data(VDN, "C2", today)}
    ]
    assert unknown["data"] == [{"statDate": day.isoformat(), "failData": {}} for day in days]


async def test_history_by_day_of_a_campaign_and_of_a_batch(test_settings: Settings) -> None:
    today = today_in(test_settings.time_zone_of(VDN))
    events = days_of_calls(today, seed=5)
    await count_events(test_settings, events)
    model = reference_statistics(events)
    first = today - timedelta(days=4)
    days = [first + timedelta(days=n) for n in range(5)]
    async with serve(test_settings) as client:
        for batch in (None, "B1"):
            scope = f"&batchId={batch}" if batch else ""
            url = f"{history_path(VDN)}?campaignId=C1{scope}&startDate={first}&endDate={today}"
            body = await get_json(client, url)
            HistoryResponse.model_validate(body)
            assert body == {
                **SUCCESS,
                "data": {
                    "vdnId": VDN,
                    "campaignId": "C1",
                    "batchId": batch,
                    "interval": "day",
                    "timeZone": "+08:00",
                    "points": [
                        {
                            "statDate": day.isoformat(),
                            **model.daily(VDN, "C1", day, batch),
                            "calledCount": model.daily(VDN, "C1", day, batch)["dailyCalledCount"],
                            **model.totals_at_end(VDN, "C1", day, batch),
                        }
                        for day in days
                    ],
                },
            }
        # Without dates: today, and today's entry agrees with the statistics interface.
        statistics = await get_json(client, f"{STATISTICS_PATH.format(vdn_id=VDN)}?campaignId=C1")
        own = await get_json(client, f"{history_path(VDN)}?campaignId=C1")
    campaign = statistics["countDetail"][0]
    (point,) = own["data"]["points"]
    assert point["statDate"] == today.isoformat()
    for name in ("dailyCalledCount", "dailyCallSucc", "dailyFinishCount", "dailyCount"):
        assert point[name] == campaign[name]
    assert (point["totalCalledCount"], point["totalCallSucc"]) == (
        campaign["totalCalledCount"],
        campaign["totalCallSucc"],
    )


def clock_changes(zone: ZoneInfo, today: date) -> tuple[date, date]:
    """The last day of 25 hours and the last day of 23 hours in ``zone`` before ``today``."""
    longest = shortest = None
    for back in range(1, 366):
        day = today - timedelta(days=back)
        hours = hours_in(day, zone)
        if hours == 25 and longest is None:
            longest = day
        if hours == 23 and shortest is None:
            shortest = day
    assert longest is not None
    assert shortest is not None
    return longest, shortest


def at(day: date, hour: int, minute: int, fold: int = 0) -> int:
    """Epoch ms of a wall-clock time in New York (fold 1: the second of a repeated hour)."""
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK, fold=fold)
    return int(moment.timestamp() * 1000)


async def test_hours_of_days_whose_clocks_change(zoned_settings: Settings) -> None:
    today = today_in(NEW_YORK)
    long_day, short_day = clock_changes(NEW_YORK, today)
    common = {"vdnId": DST_VDN, "campaignId": "C1"}
    # The repeated 01:00-02:00 of the long day: hour 1 in daylight time, hour 2 in standard.
    moments = [
        at(long_day, 0, 10), at(long_day, 1, 30), at(long_day, 1, 30, fold=1),
        at(long_day, 1, 45, fold=1), at(long_day, 23, 59),
        at(short_day, 1, 59), at(short_day, 3, 0), at(short_day, 23, 30),
    ]  # fmt: skip
    events = []
    for n, moment in enumerate(moments):
        events.append(call_event(ADDED, **common, dataId=f"d{n}", occurredAt=moment - 60_000))
        events.append(
            call_event(
                CALL, **common, dataId=f"d{n}", callId=f"c{n}", callStatus=5 if n % 2 else 6,
                final=True, failCode="X", occurredAt=moment,
            )
        )  # fmt: skip
    await count_events(zoned_settings, list(reversed(events)))
    model = reference_statistics(events, vdn_zones={DST_VDN: NEW_YORK})
    async with serve(zoned_settings) as client:
        answers = {
            day: await get_json(
                client,
                f"{history_path(DST_VDN)}?campaignId=C1&interval=hour"
                f"&startDate={day}&endDate={day}",
            )
            for day in (long_day, short_day)
        }
    for day, hours in ((long_day, 25), (short_day, 23)):
        body = answers[day]
        HistoryResponse.model_validate(body)
        assert body["data"]["timeZone"] == "America/New_York"
        points = body["data"]["points"]
        assert [point["hour"] for point in points] == list(range(hours))
        counted = model.hourly(DST_VDN, "C1", day)
        zeros = dict.fromkeys(
            ("dailyCalledCount", "dailyCallSucc", "dailyFinishCount", "dailyCount"), 0
        )
        for point in points:
            expected = counted.get(point["hour"], zeros)
            assert {name: point[name] for name in expected} == expected, point
    long_points = answers[long_day]["data"]["points"]
    assert long_points[1]["startTime"] == f"{long_day}T01:00:00-04:00"
    assert long_points[2]["startTime"] == f"{long_day}T01:00:00-05:00"
    assert (long_points[1]["dailyCalledCount"], long_points[2]["dailyCalledCount"]) == (1, 2)
    assert long_points[24]["startTime"] == f"{long_day}T23:00:00-05:00"
    assert long_points[24]["dailyCalledCount"] == 1
    short_points = answers[short_day]["data"]["points"]
    assert short_points[2]["startTime"] == f"{short_day}T03:00:00-04:00"


async def test_a_day_of_hours_adds_up_to_the_day(test_settings: Settings) -> None:
    today = today_in(test_settings.time_zone_of(VDN))
    await count_events(test_settings, days_of_calls(today, seed=7))
    day = today - timedelta(days=1)
    query = f"campaignId=C2&startDate={day}&endDate={day}"
    async with serve(test_settings) as client:
        (daily,) = (await get_json(client, f"{history_path(VDN)}?{query}"))["data"]["points"]
        hourly = (await get_json(client, f"{history_path(VDN)}?{query}&interval=hour"))["data"][
            "points"
        ]
    assert len(hourly) == 24
    for name in ("dailyCalledCount", "dailyCallSucc", "dailyFinishCount", "dailyCount"):
        assert sum(point[name] for point in hourly) == daily[name], name
    assert daily["dailyCount"] > 0


BAD_REQUESTS = [
    # (path maker, raw query, code, words of resultDesc)
    (fail_category_path, "", ErrorCode.EMPTY_PARAMETER, "campaignId is mandatory"),
    (fail_category_path, "campaignId=", ErrorCode.EMPTY_PARAMETER, "campaignId is mandatory"),
    (fail_category_path, "campaignId=c&startDate=2026-12-01", ErrorCode.WRONG_COMBINATION,
     "startDate is given without endDate: give both or neither"),
    (fail_category_path, "campaignId=c&endDate=2026-12-01", ErrorCode.WRONG_COMBINATION,
     "endDate is given without startDate"),
    (fail_category_path, "campaignId=c&startDate=2026-12-1&endDate=2026-12-01",
     ErrorCode.CONVERSION_ERROR, "startDate must be a date as yyyy-MM-dd, got '2026-12-1'"),
    (fail_category_path, "campaignId=c&startDate=2026-12-01&endDate=2026-02-30",
     ErrorCode.CONVERSION_ERROR, "endDate must be a date as yyyy-MM-dd, got '2026-02-30'"),
    (fail_category_path, "campaignId=c&startDate=20261201&endDate=2026-12-01",
     ErrorCode.CONVERSION_ERROR, "startDate must be a date"),
    (fail_category_path, "campaignId=c&startDate=2026-12-05&endDate=2026-12-01",
     ErrorCode.WRONG_VALUE, "startDate 2026-12-05 is after endDate 2026-12-01"),
    (fail_category_path, "campaignId=c&startDate=2026-11-01&endDate=2026-12-05",
     ErrorCode.WRONG_VALUE, "are 34 days apart; the interval may not exceed 30 days"),
    (fail_category_path, "campaignId=c&startDate=2020-01-01&endDate=2020-01-02",
     ErrorCode.WRONG_VALUE, "startDate 2020-01-01 is before the oldest day kept"),
    (fail_category_path, "campaignId=c&startDate=2026-12-01&startDate=2026-12-02",
     ErrorCode.TOO_MANY_PARAMETERS, "startDate is given 2 times"),
    (fail_category_path, "campaignId=c&startDate=2026-12-011&endDate=2026-12-01",
     ErrorCode.TOO_LONG, "startDate may be at most 10 characters long"),
    (fail_category_path, "campaignId=c&batchId=b", ErrorCode.PARAMETER_ERROR,
     "unknown query parameter 'batchId'; the parameters are campaignId, startDate and endDate"),
    (fail_category_path, "campaignId=a%7Bb", ErrorCode.INVALID_CHARACTERS, "campaignId may not"),
    (history_path, "batchId=b", ErrorCode.EMPTY_PARAMETER, "campaignId is mandatory"),
    (history_path, "campaignId=c&interval=week", ErrorCode.WRONG_VALUE,
     "interval must be day or hour, got 'week'"),
    (history_path, "campaignId=c&interval=minute", ErrorCode.WRONG_VALUE,
     "interval must be day or hour, got 'minute'"),
    (history_path, "campaignId=c&startDate=9999-12-31&endDate=9999-12-31&interval=hour",
     ErrorCode.WRONG_VALUE, "endDate 9999-12-31 is after today"),
    (fail_category_path, "campaignId=c&startDate=2099-01-01&endDate=2099-01-02",
     ErrorCode.WRONG_VALUE, "endDate 2099-01-02 is after today"),
    (history_path, "campaignId=c&startDate=2026-12-01", ErrorCode.WRONG_COMBINATION,
     "startDate is given without endDate"),
    (history_path, "campaignId=c&startDate=2026-13-01&endDate=2026-12-01",
     ErrorCode.CONVERSION_ERROR, "startDate must be a date as yyyy-MM-dd"),
    (history_path, "campaignId=c&startDate=2026-10-01&endDate=2026-11-15", ErrorCode.WRONG_VALUE,
     "45 days apart"),
    (history_path, "campaignId=c&batchId=%7B", ErrorCode.INVALID_CHARACTERS, "batchId may not"),
    (history_path, "campaignId=c&from=2026-12-01", ErrorCode.PARAMETER_ERROR,
     "unknown query parameter 'from'"),
    ("abc", "campaignId=c", ErrorCode.WRONG_TYPE, "vdnId must be an integer"),
    ("0", "campaignId=c", ErrorCode.WRONG_VALUE, "vdnId must be from 1 to 9999"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "query", "code", "words"), BAD_REQUESTS)
async def test_bad_parameters_get_their_isales_code(
    test_settings: Settings, path: Any, query: str, code: ErrorCode, words: str
) -> None:
    urls = (
        [f"{path(1)}?{query}"]
        if callable(path)
        else [f"{fail_category_path(path)}?{query}", f"{history_path(path)}?{query}"]
    )
    async with serve(test_settings) as client:
        for url in urls:
            response = await client.get(url)
            assert response.status_code == 400, response.text
            body = response.json()
            ErrorEnvelope.model_validate(body)
            assert (body["resultCode"], body["returnCode"]) == (code.value, code.value)
            assert words in body["resultDesc"], body


async def test_each_interface_has_its_own_flow_control(test_settings: Settings) -> None:
    """One request per VDN and window: statistics, failcategorystatistics and history each
    answer once, then 429."""
    limited = test_settings.model_copy(update={"rate_limit_requests": 1})
    urls = [
        f"{STATISTICS_PATH.format(vdn_id=VDN)}",
        f"{fail_category_path(VDN)}?campaignId=c",
        f"{history_path(VDN)}?campaignId=c",
    ]
    async with serve(limited) as client:
        first = [(await client.get(url)).status_code for url in urls]
        second = [(await client.get(url)).status_code for url in urls]
    assert (first, second) == ([200, 200, 200], [429, 429, 429])
