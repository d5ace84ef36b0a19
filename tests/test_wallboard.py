"""The wallboard (GET /) on a real workload: its numbers move, then end as the API answers them.

One real worker, one real API, real Kafka and Redis. Four campaigns of one VDN are published to
Kafka in waves, each event stamped when it is sent, while the wallboard is open in a real
headless Chromium (tests/support/browser.py). They are what a wallboard shows on a working day:
one dialling well within the abandon limit, one dialling over it, one finished in its warning
band, one with records and no call yet. The VDN is in New York's zone and the browser in Tokyo's:
the wallboard's clock, date and ETAs must be New York's, as the API's answers give them.

When the traffic is over, every figure of every row, as the page writes it, is the figure the
signed abandon-rate, pacing and progress interfaces answer, formatted as the page formats it
(read around the page, until one reading of the API on either side agrees with it: the windows
slide with the clock). The page is then photographed for docs/dashboards.md, and shown to keep
its last figures, greyed under a red line, while its reads fail.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page
from pydantic import SecretStr

from isales_stats.client import StatisticsClient
from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.publisher import EventPublisher
from tests.support.api_process import ApiProcess
from tests.support.browser import chromium
from tests.support.cleanup import delete_keys
from tests.support.credentials import ACCESS_KEY, SECRET_KEY, TEST_KEYS
from tests.support.events import ADDED, CALL, call_event
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[1]
# The documentation's screenshot (docs/dashboards.md): written there when
# ISALES_WRITE_SCREENSHOTS=1, else next to the test's logs, so that a run of the suite does not
# leave the checkout changed (the clock on it differs every time).
SCREENSHOT = ROOT / "docs" / "images" / "wallboard.png"
VDN = 3
VDN_ZONE = "America/New_York"
BROWSER_ZONE = "Asia/Tokyo"
WAVES = 8
# An ETA as the page writes it: the VDN's HH:MM (its date first when not today), or two of them.
_AT = r"(?:\d{4}-\d{2}-\d{2} )?\d{2}:\d{2}"
ETA_SPAN = rf"{_AT}(?: – {_AT})?"
WAVE_SECONDS = 1.5
# Attempts of one record, in order: C connected (final), A abandoned (a person answered, no
# agent: failCode 00701), N not answered, X not answered and final (its last attempt).
OUTCOMES = {
    "C": {"callStatus": 6, "failCode": "00000", "final": True},
    "A": {"callStatus": 5, "failCode": "00701", "final": False},
    "N": {"callStatus": 5, "failCode": "00603", "final": False},
    "X": {"callStatus": 5, "failCode": "00603", "final": True},
}
# campaign -> (records, [(records dialled so, their attempts)]): the rest are not called.
CAMPAIGNS: dict[str, tuple[int, list[tuple[int, str]]]] = {
    # 1 abandoned of 82 live calls, 1.22 %: ok; 31 records left, dialling.
    "spring-renewals": (120, [(60, "C"), (20, "NC"), (8, "NNX"), (1, "AC")]),
    # 3 abandoned of 66 live calls, 4.55 %: over the 3 % limit; 10 records left.
    "winback": (80, [(45, "C"), (15, "NC"), (3, "AC"), (7, "NX")]),
    # 1 abandoned of 38 live calls, 2.63 %: a warning (from 2.4 %); every record finished.
    "survey-nps": (40, [(36, "C"), (1, "AC"), (3, "NX")]),
    # Records imported, none called yet.
    "collections": (50, []),
}
STATES = {
    "empty": "no records",
    "notStarted": "not started",
    "dialling": "dialling",
    "stalled": "stalled",
    "finished": "finished",
}
# What the page reads of each row: the JavaScript twin of ``expected_row``.
BOARD_VIEW = """() => [...document.querySelectorAll('#rows tr, #total tr')].map(row => {
    const text = (selector) => row.querySelector(selector).textContent;
    const abandon = row.querySelector('[data-column=abandonRate]');
    return {
        row: row.dataset.campaign ?? 'VDN total',
        name: text('[data-column=name] .figure'),
        state: text('.state'),
        progress: text('[data-column=progress] .figure'),
        records: text('[data-column=progress] .small'),
        connected: text('[data-column=connectRate] .figure'),
        abandoned: text('[data-column=abandonRate] .figure'),
        status: abandon.dataset.status,
        verdict: text('[data-column=abandonRate] .verdict'),
        abandonedToday: abandon.querySelector('.small:last-child').textContent,
        calls: row.querySelector('svg.spark').dataset.points,
        perMinute: text('[data-column=callsPerMinute] .figure'),
        eta: text('[data-column=eta]'),
    };
})"""


def record_events(campaign: str, record: int, attempts: str) -> tuple[dict[str, Any], list[Any]]:
    """The record's data.added, and its calls (as field sets, stamped when sent)."""
    common = {"vdnId": VDN, "campaignId": campaign, "dataId": f"{campaign}-{record}"}
    calls = [
        {**common, "callId": f"{campaign}-{record}-{attempt}", **OUTCOMES[outcome]}
        for attempt, outcome in enumerate(attempts)
    ]
    return common, calls


def traffic() -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """Every record's data.added, and the calls in WAVES waves: each wave takes the next
    attempt of some records, so a record's attempts go out in order."""
    added, queues = [], []
    for campaign, (records, plan) in CAMPAIGNS.items():
        scripts = [attempts for count, attempts in plan for _ in range(count)]
        for record in range(records):
            common, calls = record_events(
                campaign, record, scripts[record] if record < len(scripts) else ""
            )
            added.append(common)
            if calls:
                queues.append(calls)
    waves: list[list[dict[str, Any]]] = [[] for _ in range(WAVES)]
    for index, calls in enumerate(queues):
        first = index % (WAVES - max(len(queue) for queue in queues) + 1)
        for attempt, fields in enumerate(calls):
            waves[first + attempt].append(fields)
    return added, waves


@dataclass
class Wallboard:
    settings: Settings
    base_url: str
    client: StatisticsClient
    worker: ServiceProcess


@pytest.fixture(scope="module")
def wallboard(
    local_stack: Settings, tmp_path_factory: pytest.TempPathFactory, test_topics: set[str]
) -> Iterator[Wallboard]:
    name = f"t{uuid.uuid4().hex[:12]}"
    settings = local_stack.model_copy(
        update={
            "key_prefix": f"test:{name}",
            "call_events_topic": f"{name}.call-events",
            "dead_letter_topic": f"{name}.dead-letter",
            "worker_group": f"{name}-group",
            "call_events_partitions": 4,
            "worker_metrics_port": 0,
            "vdn_time_zones": {VDN: VDN_ZONE},
            # As in production, with the live page switched on as the demo does.
            "auth_enabled": True,
            "auth_keys": SecretStr(TEST_KEYS),
            "auth_keys_file": None,
            "live_page_enabled": True,
            "rate_limit_requests": 0,
            "rate_limit_key_requests": 0,
            "access_log": False,
        }
    )
    test_topics.update({settings.call_events_topic, settings.dead_letter_topic})
    ensure_topics(settings)
    log_dir = tmp_path_factory.mktemp("wallboard")
    worker = ServiceProcess(settings, "worker", log_dir=log_dir)
    api = ApiProcess(settings, log_dir=log_dir)
    with worker, api, StatisticsClient(api.url, ACCESS_KEY, SECRET_KEY, timeout=5) as client:
        yield Wallboard(settings, api.url, client, worker)
    delete_keys(settings.redis_url, settings.key_prefix)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


# --- what the page should write: the page's formats, in Python -------------------------------


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} %"


def wall_time(iso: str, today: str) -> str:
    return ("" if iso[:10] == today else iso[:10] + " ") + iso[11:16]


def eta_text(pace: dict[str, Any], now: str) -> str:
    if pace["eta"] is None:
        return str(pace["etaReason"] or "–")
    earliest = wall_time(pace["eta"]["earliest"], now[:10])
    latest = wall_time(pace["eta"]["latest"], now[:10])
    return earliest if earliest == latest else f"{earliest} – {latest}"


def expected_row(
    row: str, name: str, pace: dict[str, Any], rates: dict[str, Any], calls: list[int], now: str
) -> dict[str, str]:
    window = rates["rolling30d"]
    return {
        "row": row,
        "name": name,
        "state": STATES[pace["state"]],
        "progress": percent(pace["percentComplete"]),
        "records": f"{pace['finishedRecords']:,} / {pace['totalRecords']:,} records",
        "connected": percent(pace["connectRate"]["today"]),
        "abandoned": percent(window["ratePercent"]),
        "status": window["status"],
        "verdict": window["status"],
        "abandonedToday": "today " + percent(rates["today"]["ratePercent"]),
        "calls": ",".join(str(count) for count in calls),
        "perMinute": f"{pace['callsPerMinute']['last5']:.2f}",
        "eta": eta_text(pace, now),
    }


@dataclass(frozen=True)
class Answers:
    """The signed interfaces' answers for the VDN, read one after the other."""

    pacing: dict[str, Any]
    rates: dict[str, Any]
    lines: dict[str, list[int]]

    @classmethod
    def read(cls, client: StatisticsClient) -> Answers:
        pacing = client.pacing(VDN)
        rates = client.abandon_rate(VDN)
        lines = {
            campaign["campaignId"]: [
                point["calls"] for point in client.progress(VDN, campaign["campaignId"], 60)
            ]
            for campaign in pacing["campaigns"]
        }
        return cls(pacing, rates, lines)

    def board(self) -> list[dict[str, str]]:
        """The rows the wallboard should show: each campaign, then the VDN's total."""
        now = self.pacing["now"]
        rates = {entry["campaignId"]: entry for entry in self.rates["campaigns"]}
        rows = [
            expected_row(
                pace["campaignId"],
                pace["campaignId"],
                pace,
                rates[pace["campaignId"]],
                self.lines[pace["campaignId"]],
                now,
            )
            for pace in self.pacing["campaigns"]
        ]
        summed = [sum(minute) for minute in zip(*self.lines.values(), strict=True)]
        rows.append(
            expected_row(
                "VDN total", "VDN total", self.pacing["total"], self.rates["total"], summed, now
            )
        )
        return rows


def board_of(page: Page) -> list[dict[str, str]]:
    shown: list[dict[str, str]] = page.evaluate(BOARD_VIEW)
    return shown


def agreed_board(page: Page, client: StatisticsClient) -> list[dict[str, str]] | None:
    """The page's rows when they are the API's, read just before and just after them."""
    before = Answers.read(client).board()
    shown = board_of(page)
    after = Answers.read(client).board()
    return shown if before == shown == after else None


# --- the test ---------------------------------------------------------------------------------


def publish_in_waves(
    settings: Settings, stop: threading.Event, failures: list[BaseException]
) -> None:
    """The records, then a wave of calls every WAVE_SECONDS, each event stamped when sent."""
    added, waves = traffic()
    try:
        with EventPublisher(settings) as publisher:
            publisher.publish_all([call_event(ADDED, **fields) for fields in added], timeout=30)
            for wave in waves:
                if stop.wait(WAVE_SECONDS):
                    return
                publisher.publish_all([call_event(CALL, **fields) for fields in wave], timeout=30)
    except BaseException as error:  # the test says so, instead of waiting for numbers
        failures.append(error)


def test_the_wallboard_follows_a_workload_to_the_apis_numbers(
    wallboard: Wallboard, browser: Browser, tmp_path: Path
) -> None:
    shot_path = tmp_path / "wallboard.png"
    context = browser.new_context(viewport={"width": 1600, "height": 900}, timezone_id=BROWSER_ZONE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{wallboard.base_url}/?vdn={VDN}")
    assert page.title() == "isales-stats: wallboard"
    stop = threading.Event()
    failures: list[BaseException] = []
    sender = threading.Thread(
        target=publish_in_waves, args=(wallboard.settings, stop, failures), daemon=True
    )
    sender.start()
    try:
        # The records arrive first: the campaigns show, none of them called yet.
        assert wait_for(lambda: len(board_of(page)) == len(CAMPAIGNS) + 1, 60), (
            f"the campaigns did not show:\n{wallboard.worker.log()}"
        )
        assert wait_for(lambda: page.get_attribute("#status", "data-mode") == "stream", 10)
        first = board_of(page)
        # While the calls flow, the numbers move.
        assert wait_for(lambda: board_of(page) != first, 30), "the wallboard did not move"
    finally:
        sender.join(timeout=60)
        stop.set()
    assert not failures, failures

    # Every call counted (the worker may still be at it): then the page is the API's.
    calls = sum(len(attempts) * count for _, plan in CAMPAIGNS.values() for count, attempts in plan)
    assert wait_for(
        lambda: sum(point["calls"] for campaign in CAMPAIGNS for point in
                    wallboard.client.progress(VDN, campaign, 60)) == calls,
        60,
    ), f"the API does not count every call:\n{wallboard.worker.log()}"  # fmt: skip
    shown = wait_for(lambda: agreed_board(page, wallboard.client), 60)
    assert shown, (board_of(page), Answers.read(wallboard.client).board())
    rows = {row["row"]: row for row in shown}
    # The day the campaigns were planned to show (the API's figures, checked above).
    assert [row["row"] for row in shown] == [*sorted(CAMPAIGNS), "VDN total"]
    assert rows["winback"]["status"] == "over"
    assert rows["survey-nps"]["status"] == "warning"
    assert rows["spring-renewals"]["status"] == "ok"
    assert rows["survey-nps"]["eta"] == "finished"
    assert rows["collections"]["eta"] == "not started"
    assert rows["collections"]["abandoned"] == "–"
    assert rows["spring-renewals"]["state"] == rows["winback"]["state"] == "dialling"
    assert re.fullmatch(ETA_SPAN, rows["spring-renewals"]["eta"]), rows["spring-renewals"]

    # The tenant's clock: New York's, whatever the browser's zone.
    zone = ZoneInfo(VDN_ZONE)
    assert page.inner_text("#zone") == VDN_ZONE
    before = datetime.now(zone).replace(tzinfo=None)
    clock = page.inner_text("#date") + " " + page.inner_text("#clock")
    after = datetime.now(zone).replace(tzinfo=None)
    shown_at = datetime.fromisoformat(clock)
    assert before - timedelta(seconds=2) <= shown_at <= after + timedelta(seconds=1), clock
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == BROWSER_ZONE

    # The legend maps every column to the names of the API's answers.
    legend = page.inner_text("#legend")
    for name in (
        "percentComplete", "finishedRecords", "totalRecords", "connectRate.today",
        "rolling30d.ratePercent", "status", "limitPercent", "warningPercent",
        "today.ratePercent", "points[].calls", "callsPerMinute.last5", "eta.earliest",
        "eta.latest", "etaReason", "total",
    ):  # fmt: skip
        assert name in legend, name
    headers = page.eval_on_selector_all("#board thead th", "cells => cells.map(c => c.textContent)")
    terms = page.eval_on_selector_all("#legend dt", "terms => terms.map(t => t.textContent)")
    for header in headers[1:]:
        assert any(header.startswith(term) for term in terms), header

    screenshot = SCREENSHOT if os.environ.get("ISALES_WRITE_SCREENSHOTS") == "1" else shot_path
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000  # a picture of the board, not an empty page

    # A read that fails: the last figures stay, greyed, under a line that says so.
    page.route("**/live/wallboard/**", lambda route: route.abort())
    assert wait_for(lambda: page.is_visible("#banner"), 30)
    assert page.inner_text("#banner").startswith("Not updating: the API does not answer")
    assert page.evaluate("document.body.classList.contains('stale')")
    assert [row["row"] for row in board_of(page)] == [row["row"] for row in shown]
    page.unroute("**/live/wallboard/**")
    assert wait_for(lambda: not page.is_visible("#banner"), 30)
    assert not page.evaluate("document.body.classList.contains('stale')")
    assert not errors, errors
    context.close()
