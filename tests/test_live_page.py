"""The pages' server side: off by default, and when on, the API's own numbers unsigned.

In-process (tests/support/app_client.py's ``serve``) against the real Redis; the pages
themselves are driven in a real browser during a real workload: the wallboard in
tests/test_wallboard.py, the counters page in tests/test_live_views.py.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from isales_stats.core.days import today_in
from isales_stats.core.interface import ABANDON_RATE_PATH, PACING_PATH, PROGRESS_PATH
from isales_stats.core.reference_model import reference_statistics
from isales_stats.core.settings import Settings
from tests.support.app_client import serve, serve_with_operations, statistics_path
from tests.support.clock import now_ms
from tests.support.counting import count_events
from tests.support.credentials import ACCESS_KEY, SECRET_KEY, TEST_KEYS
from tests.support.streams import campaign_events

pytestmark = [pytest.mark.stack, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def guarded(settings: Settings, *, live_page: bool) -> Settings:
    """Authentication on, as in production, with the live page on or off."""
    return settings.model_copy(
        update={
            "auth_enabled": True,
            "auth_keys": SecretStr(TEST_KEYS),
            "auth_keys_file": None,
            "live_page_enabled": live_page,
        }
    )


async def test_the_live_page_is_off_by_default(test_settings: Settings) -> None:
    assert Settings.model_fields["live_page_enabled"].default is False
    async with serve(guarded(test_settings, live_page=False)) as client:
        page = await client.get("/")
        assert page.status_code == 404
        assert "ISALES_LIVE_PAGE_ENABLED=true" in page.text
        assert (await client.get("/live/statistics/1")).status_code == 404
        assert (await client.get("/live/stream/1")).status_code == 404
        assert (await client.get("/live/wallboard/1")).status_code == 404
        assert (await client.get("/counters")).status_code == 404
    async with serve_with_operations(guarded(test_settings, live_page=False)) as (_, operations):
        document = (await operations.get("/openapi.json")).json()
        assert not [path for path in document["paths"] if path.startswith("/live")]


async def test_the_front_door_names_the_interfaces_and_where_the_docs_are(
    test_settings: Settings,
) -> None:
    settings = guarded(test_settings, live_page=False).model_copy(update={"operations_port": 9103})
    async with serve_with_operations(settings) as (client, operations):
        front = await client.get("/")
        assert (await client.get("/docs")).status_code == 404  # not on this port
        assert (await operations.get("/docs")).status_code == 200  # but on that one
    assert front.status_code == 404
    assert front.headers["content-type"] == "application/json"
    body = front.json()
    assert body["resultCode"] == body["returnCode"] == "02000404"
    said = body["resultDesc"]
    assert f"GET {statistics_path('{vdnId}')}" in said
    assert "/docs on the operations port (9103, ISALES_OPERATIONS_PORT), not on this one" in said
    assert "ISALES_LIVE_PAGE_ENABLED=true" in said
    async with serve(settings.model_copy(update={"operations_port": 0})) as client:
        said = (await client.get("/")).json()["resultDesc"]
    assert "(/docs) is off with the operations port (ISALES_OPERATIONS_PORT=0)" in said


@pytest.mark.parametrize(
    ("path", "title", "reads"),
    [
        ("/", "isales-stats: wallboard", '"/live/wallboard/"'),
        ("/counters", "isales-stats: counters", '"/live/statistics/"'),
    ],
)
async def test_each_page_is_one_html_file_that_reads_its_endpoint(
    test_settings: Settings, path: str, title: str, reads: str
) -> None:
    async with serve(guarded(test_settings, live_page=True)) as client:
        page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert f"<title>{title}</title>" in html
    # The docs are on the operations port (api/operations.py): the page links nowhere else.
    assert "/docs" not in html
    assert reads in html
    assert 'new EventSource("/live/stream/"' in html  # the changes, pushed (api/push/)
    # No build step and nothing fetched from elsewhere: no external script, style, font or
    # image (a wallboard's screen may have no way out to a CDN).
    assert "<script src" not in html
    assert "<link" not in html
    assert not re.search(r"(?:src|href)=\"?(?:https?:)?//", html)
    assert "@import" not in html
    assert "url(" not in html
    # Ids are untrusted text: the page never writes them as HTML.
    assert "innerHTML" not in html
    assert "insertAdjacentHTML" not in html


async def test_live_statistics_are_the_signed_apis_numbers_without_a_signature(
    test_settings: Settings,
) -> None:
    settings = guarded(test_settings, live_page=True)
    moment = now_ms()
    events = campaign_events(1, "1001", ["b1", "b2", None], 12, moment_ms=moment)
    events += campaign_events(1, "1002", ["b1"], 5, moment_ms=moment)
    await count_events(settings, events)
    async with serve(settings) as unsigned:
        live = await unsigned.get("/live/statistics/1")
        refused = await unsigned.get(statistics_path(1))
    async with serve(settings, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as signed:
        api = await signed.get(statistics_path(1))
    assert refused.status_code == 401, "the statistics interface itself stays signed"
    assert api.status_code == 200
    assert live.status_code == 200
    body = live.json()
    assert body["vdnId"] == 1
    assert body["day"] == today_in(settings.time_zone_of(1)).isoformat()
    assert body["countDetail"] == api.json()["countDetail"]
    assert [campaign["campaignId"] for campaign in body["countDetail"]] == ["1001", "1002"]


async def test_live_statistics_carry_yesterday_next_to_today(test_settings: Settings) -> None:
    settings = guarded(test_settings, live_page=True)
    today = today_in(settings.time_zone_of(1))
    now = now_ms()
    events = campaign_events(1, "1001", ["b1", None], 8, moment_ms=now - 86_400_000)
    events += campaign_events(1, "1001", ["b2"], 3, moment_ms=now)
    await count_events(settings, events)
    async with serve(settings) as unsigned:
        body = (await unsigned.get("/live/statistics/1")).json()
    yesterday = today - timedelta(days=1)
    assert body["yesterday"] == yesterday.isoformat()
    assert body["yesterdayDetail"] == reference_statistics(events).count_detail(1, yesterday)
    assert body["yesterdayDetail"][0]["dailyCount"] == 16  # the records of yesterday
    assert body["countDetail"][0]["dailyCount"] == 3


@pytest.mark.parametrize("vdn", ["abc", "0", "10000", "-1", "01", "1.5"])
async def test_live_statistics_refuses_a_vdn_out_of_range(
    test_settings: Settings, vdn: str
) -> None:
    async with serve(guarded(test_settings, live_page=True)) as client:
        answer = await client.get(f"/live/statistics/{vdn}")
    assert answer.status_code == 400
    assert "vdnId must be an integer from 1 to 9999" in answer.json()["resultDesc"]


async def test_an_unknown_vdn_has_no_campaigns(test_settings: Settings) -> None:
    async with serve(guarded(test_settings, live_page=True)) as client:
        answer = await client.get("/live/statistics/9999")
    assert answer.status_code == 200
    assert answer.json()["countDetail"] == []


async def test_the_wallboard_reads_the_signed_interfaces_answers_unsigned(
    test_settings: Settings,
) -> None:
    """One read of the VDN's windows gives both answers; they are the interfaces' own, less
    what moves with the clock between two reads (now, and the ETAs worked out from it)."""
    settings = guarded(test_settings, live_page=True)
    moment = now_ms()
    events = campaign_events(1, "1001", ["b1", "b2", None], 12, moment_ms=moment)
    events += campaign_events(1, "1002", ["b1"], 5, moment_ms=moment)
    await count_events(settings, events)
    async with serve(settings) as unsigned:
        board = (await unsigned.get("/live/wallboard/1")).json()
        refused = await unsigned.get(ABANDON_RATE_PATH.format(vdn_id=1))
    async with serve(settings, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as signed:
        rates = (await signed.get(ABANDON_RATE_PATH.format(vdn_id=1))).json()["data"]
        pacing = (await signed.get(PACING_PATH.format(vdn_id=1))).json()["data"]
        lines = {
            campaign: [
                point["calls"]
                for point in (
                    await signed.get(
                        PROGRESS_PATH.format(vdn_id=1), params={"campaignId": campaign}
                    )
                ).json()["data"]["points"]
            ]
            for campaign in ("1001", "1002")
        }
    assert refused.status_code == 401, "the interfaces themselves stay signed"
    assert board["vdnId"] == 1
    assert board["abandonRate"] == rates  # basis live, the interface's default
    assert _still(board["pacing"]) == _still(pacing)
    assert board["pacing"]["now"][:16] <= pacing["now"][:16]
    assert [campaign["campaignId"] for campaign in board["pacing"]["campaigns"]] == ["1001", "1002"]
    assert board["progress"]["minutes"] == 60
    shown = {entry["campaignId"]: entry["calls"] for entry in board["progress"]["campaigns"]}
    # The counted minute is the last one of both, unless a minute turned between the reads.
    assert {campaign: sum(calls) for campaign, calls in shown.items()} == {
        campaign: sum(calls) for campaign, calls in lines.items()
    }
    assert all(len(calls) == 60 for calls in shown.values())
    assert sum(shown["1001"]) > 0


def _still(pacing: dict[str, Any]) -> dict[str, Any]:
    """A pacing answer less what moves with the clock: now and the ETAs (to the second)."""

    def scope(figures: dict[str, Any]) -> dict[str, Any]:
        kept = {name: value for name, value in figures.items() if name not in {"eta", "batches"}}
        return {**kept, "batches": [scope(batch) for batch in figures.get("batches", [])]}

    return {
        **{
            name: value
            for name, value in pacing.items()
            if name not in {"now", "total", "campaigns"}
        },
        "total": scope(pacing["total"]),
        "campaigns": [scope(campaign) for campaign in pacing["campaigns"]],
    }


@pytest.mark.parametrize("vdn", ["abc", "0", "10000"])
async def test_the_wallboard_refuses_a_vdn_out_of_range(test_settings: Settings, vdn: str) -> None:
    async with serve(guarded(test_settings, live_page=True)) as client:
        answer = await client.get(f"/live/wallboard/{vdn}")
    assert answer.status_code == 400
    assert "vdnId must be an integer from 1 to 9999" in answer.json()["resultDesc"]


async def test_the_wallboard_of_an_unknown_vdn_is_empty(test_settings: Settings) -> None:
    async with serve(guarded(test_settings, live_page=True)) as client:
        board = (await client.get("/live/wallboard/9999")).json()
    assert board["pacing"]["campaigns"] == board["abandonRate"]["campaigns"] == []
    assert board["pacing"]["total"]["state"] == "empty"
    assert board["progress"]["campaigns"] == []
