"""What people look at, on a real workload: the Grafana dashboards and the counters page.

One real worker, one real API, real Kafka and Redis, traffic from ``isales-stats simulate``:

* VDN 1 feeds the dashboards. Its traffic comes in two parts, the second at least one minute
  after the first: the progress stream gets an entry only when a minute is over, and the counting
  script closes a campaign's minute when its next events arrive in a later minute (by the
  worker's clock). The wait runs in a thread while the browser test below runs.
* VDN 2 feeds the counters page (GET /counters), in a real headless Chromium (Debian's package,
  driven by Playwright; nothing is downloaded: tests/support/browser.py), while its traffic
  flows. The wallboard at / has its own workload: tests/test_wallboard.py.

Grafana itself cannot be installed here; tests/support/grafana.py plays its part and runs
every target of every dashboard against the real Redis.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page
from pydantic import SecretStr

from isales_stats.client import StatisticsClient
from isales_stats.core.days import today_in
from isales_stats.core.keys import DAILY_COUNTERS, TOTAL_COUNTERS, KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from tests.support.api_process import ApiProcess
from tests.support.browser import chromium
from tests.support.cleanup import delete_keys
from tests.support.credentials import ACCESS_KEY, SECRET_KEY, TEST_KEYS
from tests.support.grafana import (
    Frame,
    interpolate,
    load_dashboards,
    panel_targets,
    resolve_variables,
    run_target,
    scopes,
    variables_of,
)
from tests.support.processes import ServiceProcess, run_cli
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
DASHBOARD_VDN, PAGE_VDN = 1, 2
CAMPAIGNS, BATCHES = ("1001", "1002"), ("batch-1", "batch-2")
SHAPE = ["--campaigns", "2", "--batches", "2", "--first-campaign", "1001", "--timeline", "live"]
# The counters the counters page shows, in its column order; those that never go down.
PAGE_COUNTERS = (*DAILY_COUNTERS, *TOTAL_COUNTERS)
GROWING = {"dailyCalledCount", "dailyCallSucc", "dailyFinishCount", "dailyCount"} | {
    "totalCalledCount",
    "totalCallSucc",
    "totalFinishCount",
}


@dataclass
class Workload:
    settings: Settings
    base_url: str
    operations_url: str
    client: StatisticsClient
    log_dir: Path
    dashboard_traffic: threading.Thread
    worker: ServiceProcess
    failures: list[str]

    def expected(self, vdn: int) -> list[dict[str, Any]]:
        """The sum of the ``--expect`` predictions of every simulate run for ``vdn`` so far."""
        parts = [
            json.loads(path.read_text()) for path in sorted(self.log_dir.glob(f"expect-{vdn}-*"))
        ]
        return sum_count_details([part["countDetail"] for part in parts])


def sum_count_details(parts: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """countDetail of runs over distinct records and calls: every counter adds up."""
    campaigns: dict[str, dict[str, Any]] = {}
    for detail in parts:
        for campaign in detail:
            total = campaigns.setdefault(campaign["campaignId"], {"batches": {}})
            _add(total, campaign)
            for batch in campaign["batchDetail"]:
                _add(total["batches"].setdefault(batch["batchId"], {}), batch)
    return [
        {
            "campaignId": campaign_id,
            **{name: value for name, value in total.items() if name != "batches"},
            "batchDetail": [
                {"batchId": batch_id, **counters}
                for batch_id, counters in sorted(total["batches"].items())
            ],
        }
        for campaign_id, total in sorted(campaigns.items())
    ]


def _add(total: dict[str, Any], counters: Mapping[str, Any]) -> None:
    for name, value in counters.items():
        if isinstance(value, int):
            total[name] = total.get(name, 0) + value


def simulate(workload_settings: Settings, log_dir: Path, vdn: int, seed: int, *extra: str) -> None:
    """One ``isales-stats simulate`` run to its end, its prediction kept for ``expected``."""
    expect = log_dir / f"expect-{vdn}-{seed}.json"
    result = run_cli(
        workload_settings,
        "simulate", "--vdn", str(vdn), *SHAPE, "--seed", str(seed), "--expect", str(expect), *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def workload(
    local_stack: Settings, tmp_path_factory: pytest.TempPathFactory, test_topics: set[str]
) -> Iterator[Workload]:
    name = f"t{uuid.uuid4().hex[:12]}"
    settings = local_stack.model_copy(
        update={
            "key_prefix": f"test:{name}",
            "call_events_topic": f"{name}.call-events",
            "dead_letter_topic": f"{name}.dead-letter",
            "worker_group": f"{name}-group",
            "call_events_partitions": 4,
            "worker_metrics_port": 0,
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
    log_dir = tmp_path_factory.mktemp("live-views")
    worker = ServiceProcess(settings, "worker", log_dir=log_dir)
    api = ApiProcess(settings, log_dir=log_dir)
    failures: list[str] = []
    cancelled = threading.Event()

    def second_part() -> None:
        # Into the next minute (by this machine's clock, which the worker shares), then more;
        # not at all when the dashboards' test was not selected and the module is done.
        if cancelled.wait(60 - time.time() % 60 + 1):
            return
        try:
            simulate(settings, log_dir, DASHBOARD_VDN, 2, "--records", "15")
        except AssertionError as error:
            failures.append(str(error))

    with worker, api, StatisticsClient(api.url, ACCESS_KEY, SECRET_KEY, timeout=5) as client:
        simulate(settings, log_dir, DASHBOARD_VDN, 1, "--records", "25")
        thread = threading.Thread(target=second_part, name="dashboard-traffic", daemon=True)
        found = Workload(
            settings, api.url, api.operations_url, client, log_dir, thread, worker, failures
        )
        counted = wait_for(lambda: client.count_detail(DASHBOARD_VDN) == found.expected(1), 60)
        assert counted, f"the first part was not counted:\n{worker.log()}"
        thread.start()
        try:
            yield found
        finally:
            cancelled.set()
            thread.join(timeout=90)
    delete_keys(settings.redis_url, settings.key_prefix)


# --- the counters page --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def page_numbers(page: Page) -> dict[str, int]:
    """Every counter on the page: "campaign|batch|counter" -> value (batch "" for a campaign)."""
    found: dict[str, int] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#rows tr')].flatMap(row =>
            [...row.querySelectorAll('td[data-counter]')].map(cell => [
                [row.dataset.campaign, row.dataset.batch ?? '', cell.dataset.counter].join('|'),
                Number(cell.textContent)])))"""
    )
    return found


def api_numbers(detail: list[dict[str, Any]]) -> dict[str, int]:
    """The same view of the statistics API's countDetail."""
    found = {}
    for campaign in detail:
        for name in PAGE_COUNTERS:
            found[f"{campaign['campaignId']}||{name}"] = campaign[name]
        for batch in campaign["batchDetail"]:
            for name in PAGE_COUNTERS:
                found[f"{campaign['campaignId']}|{batch['batchId']}|{name}"] = batch[name]
    return found


def refreshes_of(page: Page) -> int:
    """Reads of the whole table (every interval while polling; at most every 5 s streaming)."""
    return int(page.get_attribute("#status", "data-refreshes") or 0)


def events_of(page: Page) -> int:
    """Changes pushed to the page (its stream)."""
    return int(page.get_attribute("#status", "data-events") or 0)


def campaign_rows(numbers: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in numbers.items() if key.split("|")[1] == ""}


def test_the_counters_page_follows_a_running_workload(workload: Workload, browser: Browser) -> None:
    traffic = ServiceProcess(
        workload.settings,
        "simulate", "--vdn", str(PAGE_VDN), *SHAPE, "--records", "40", "--seed", "3",
        "--rate", "40", "--expect", str(workload.log_dir / f"expect-{PAGE_VDN}-3.json"),
        log_dir=workload.log_dir,
    )  # fmt: skip
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    with traffic:
        page.goto(f"{workload.base_url}/counters?vdn={PAGE_VDN}&interval=500")
        assert page.title() == "isales-stats: counters"

        def calls_shown() -> int:
            return sum(v for k, v in page_numbers(page).items() if k.endswith("|totalCalledCount"))

        assert wait_for(calls_shown, 30), f"no calls on the page:\n{workload.worker.log()}"
        # The page follows the push stream, not a poll.
        assert wait_for(lambda: page.get_attribute("#status", "data-mode") == "stream", 10)
        first, events = page_numbers(page), events_of(page)
        changed = wait_for(lambda: page_numbers(page) != first, 15)
        assert changed, "the numbers on the page did not change while traffic flowed"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "counters-page-running.png"), full_page=True)
        assert events_of(page) > events
        # While it changes, a campaign's row shows what the API serves: between a read of the
        # API just before a pushed change and one just after it, for the counters that only
        # grow. (Batch rows follow the table's reads, at most every 5 s while streaming.)
        before = api_numbers(workload.client.count_detail(PAGE_VDN))
        seen = events_of(page)
        assert wait_for(lambda: events_of(page) >= seen + 2, 10)  # one recorded after `before`
        shown = campaign_rows(page_numbers(page))
        after = api_numbers(workload.client.count_detail(PAGE_VDN))
        for key, value in shown.items():
            if key.rsplit("|", 1)[1] in GROWING:
                assert before.get(key, 0) <= value <= after[key], (key, before.get(key), after[key])
        assert traffic.process is not None
        assert traffic.process.wait(120) == 0, traffic.log()

    # The traffic is over: once the API serves all of it, the page shows exactly that.
    expected = workload.expected(PAGE_VDN)
    served = wait_for(lambda: (d := workload.client.count_detail(PAGE_VDN)) == expected and d, 60)
    assert served == expected, (
        f"the API does not serve the simulated traffic:\n{workload.worker.log()}"
    )
    wanted = api_numbers(expected)
    # Campaign rows at once from the stream; batch rows by the table read after the last change.
    assert wait_for(lambda: page_numbers(page) == wanted, 15), (page_numbers(page), wanted)
    assert page.get_attribute("#status", "data-mode") == "stream"
    # Without the stream (?stream=0, as when it fails) the page polls, to the same numbers.
    polling = context.new_page()
    polling.goto(f"{workload.base_url}/counters?vdn={PAGE_VDN}&interval=500&stream=0")
    assert wait_for(lambda: refreshes_of(polling) >= 2, 10)
    assert polling.get_attribute("#status", "data-mode") == "polling"
    assert page_numbers(polling) == wanted
    polling.close()
    today = today_in(workload.settings.time_zone_of(PAGE_VDN))
    assert page.inner_text("#day") == today.isoformat()
    # Yesterday's columns show the day before's counters as the history interface reads them
    # (the simulated traffic is all of today: zeros, in every row).
    yesterday = today - timedelta(days=1)
    assert page.inner_text("#yesterday") == yesterday.isoformat()
    for campaign in expected:
        (before,) = workload.client.history(
            PAGE_VDN, campaign["campaignId"], start=yesterday, end=yesterday
        )
        shown = page.evaluate(
            """(id) => Object.fromEntries([...document.querySelectorAll('#rows tr.campaign')]
                .filter(row => row.dataset.campaign === id)
                .flatMap(row => [...row.querySelectorAll('td[data-yesterday]')])
                .map(cell => [cell.dataset.yesterday, Number(cell.textContent)]))""",
            campaign["campaignId"],
        )
        assert shown == {name: before[name] for name in shown}
        assert len(shown) == 4
    assert not errors, errors
    page.screenshot(path=str(ARTIFACTS / "counters-page.png"), full_page=True)
    context.close()
    assert httpx.get(f"{workload.operations_url}/docs", timeout=5).status_code == 200


# --- the dashboards ------------------------------------------------------------------------


def test_every_dashboard_target_reads_the_workloads_counters(workload: Workload) -> None:
    workload.dashboard_traffic.join(timeout=90)
    assert not workload.dashboard_traffic.is_alive(), "the second part of the traffic hangs"
    assert not workload.failures, workload.failures
    expected = workload.expected(DASHBOARD_VDN)
    served = wait_for(
        lambda: (detail := workload.client.count_detail(DASHBOARD_VDN)) == expected and detail, 60
    )
    assert served == expected, f"the second part was not counted:\n{workload.worker.log()}"
    by_campaign = {campaign["campaignId"]: campaign for campaign in served}

    settings = workload.settings
    layout = KeyLayout(settings.key_prefix)
    zone = settings.time_zone_of(DASHBOARD_VDN)
    today = today_in(zone).isoformat()
    # The dashboards' time range, now/d to now, in their zone (the VDN's: test_dashboards.py).
    now = datetime.now(zone)
    from_ms = int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)
    to_ms = int(now.timestamp() * 1000)
    checks = DashboardChecks(layout, by_campaign, today)
    with redis.Redis.from_url(settings.redis_url) as client:
        for name, dashboard in load_dashboards().items():
            given = {"prefix": settings.key_prefix, "vdn": str(DASHBOARD_VDN)}
            _, options = resolve_variables(dashboard, client, given)
            assert options["campaign"] == sorted(CAMPAIGNS), name
            # A single-value campaign is chosen in turn; a multi-value one repeats its rows.
            single = not next(v for v in variables_of(dashboard) if v["name"] == "campaign")[
                "multi"
            ]
            for choice in [{"campaign": campaign} for campaign in CAMPAIGNS] if single else [{}]:
                values, options = resolve_variables(dashboard, client, {**given, **choice})
                if "day" in values:
                    assert values["day"] == [today], name
                if "batch" in options:
                    assert options["batch"] == sorted(BATCHES), name
                for item in panel_targets(name, dashboard):
                    for scope in scopes(item, values):
                        key = interpolate(item.target["keyName"], scope)
                        frame = run_target(client, {**item.target, "keyName": key}, from_ms, to_ms)
                        checks.check(name, scope, key, frame)
    checks.check_progress_adds_up()
    # Every kind of key, for both campaigns (and both batches of each): overview and campaign
    # view read the campaign hashes, the campaign view the batch ones, the progress view its own.
    history_days = 14  # the rows of the history dashboard, today's and 13 before
    assert checks.counted == {
        "campaign_totals": 4,
        "campaign_day": 6,  # the history's today, too
        "day_hours": 4,  # calls and connects per hour
        "day_fails": 2,
        "past_campaign_day": 2 * (history_days - 1),
        "past_day_hours": 4 * (history_days - 1),
        "past_day_fails": 2 * (history_days - 1),
        "batch_totals": 4,
        "batch_day": 4,
        "campaign_progress": 2,
        "campaign_progress_current": 2,
    }


class DashboardChecks:
    """What each panel's frame must hold: its panel's shape, and the API's numbers."""

    def __init__(self, layout: KeyLayout, served: Mapping[str, dict[str, Any]], today: str) -> None:
        self.layout = layout
        self.served = served
        self.today = today
        self.counted: dict[str, int] = {}
        # campaign -> (calls, connects, finished) summed over the finished minutes and the
        # current one: the progress of the day must add up to the campaign's totals.
        self.progress: dict[str, list[float]] = {}

    def kind_of(self, scope: Mapping[str, str], key: str) -> str:
        """Which KeyLayout key ``key`` is, built from the scope's ids: anything else fails."""
        vdn, campaign, batch = int(scope["vdn"]), scope["campaign"], scope.get("batch")
        kinds = {
            self.layout.campaign_totals(vdn, campaign): "campaign_totals",
            self.layout.campaign_day(vdn, campaign, self.today): "campaign_day",
            self.layout.campaign_progress(vdn, campaign): "campaign_progress",
            self.layout.campaign_progress_current(vdn, campaign): "campaign_progress_current",
        }
        if batch is not None:
            kinds[self.layout.batch_totals(vdn, campaign, batch)] = "batch_totals"
            kinds[self.layout.batch_day(vdn, campaign, batch, self.today)] = "batch_day"
        # The history's rows: today's keys, and those of the days before (the workload's
        # traffic is all of today, so those hold nothing).
        day = scope.get("days")
        if day is not None:
            past = "past_" if day != self.today else ""
            kinds[self.layout.campaign_day(vdn, campaign, day)] = f"{past}campaign_day"
            kinds[self.layout.day_hours(vdn, campaign, day)] = f"{past}day_hours"
            kinds[self.layout.day_fails(vdn, campaign, day)] = f"{past}day_fails"
        assert key in kinds, f"{key!r} is none of KeyLayout's keys for {dict(scope)}"
        return kinds[key]

    def check(self, dashboard: str, scope: Mapping[str, str], key: str, frame: Frame) -> None:
        kind = self.kind_of(scope, key)
        self.counted[kind] = self.counted.get(kind, 0) + 1
        campaign = scope["campaign"]
        served = self.served[campaign]
        if kind.startswith("batch"):
            (served,) = [
                entry for entry in served["batchDetail"] if entry["batchId"] == scope["batch"]
            ]
        where = f"{dashboard}: {key}"
        if kind.startswith("past_"):
            numbers = [value for column in frame.columns.values() for value in column]
            assert all(value in ("", 0.0) for value in numbers), (where, frame)
            return
        if kind == "day_hours":
            # A bar per hour: one row of the 25 hours a day may have, numbers where counted.
            assert frame.rows == 1, (where, frame)
            assert len(frame.columns) == 25, where
            (counter,) = {name.split(":")[1] for name in frame.columns}
            daily = {"calls": "dailyCalledCount", "connects": "dailyCallSucc"}[counter]
            hours = [column[0] for column in frame.columns.values() if column[0] != ""]
            assert sum(hours) == served[daily], (where, frame)
            return
        if kind == "day_fails":
            # A bar per failCode: the day's failed calls (every call connects or fails).
            assert frame.rows == 1, (where, frame)
            failed = served["dailyCalledCount"] - served["dailyCallSucc"]
            assert sum(column[0] for column in frame.columns.values()) == failed, (where, frame)
            assert failed > 0, where
            return
        if kind.endswith(("totals", "day")):
            # A stat panel: one row, one number per counter, the numbers the API serves.
            counters = TOTAL_COUNTERS if kind.endswith("totals") else DAILY_COUNTERS
            assert frame.rows == 1, (where, frame)
            shown = {name: frame.columns[name][0] for name in counters}
            assert shown == {name: float(served[name]) for name in counters}, where
            assert any(shown.values()), f"{where}: every counter is 0"
            return
        progress = self.progress.setdefault(campaign, [0.0, 0.0, 0.0])
        if kind == "campaign_progress":
            # A time series: a time column and the three numbers, one row per finished minute.
            assert frame.rows >= 1, f"{where}: no finished minute today"
            assert {"$time", "calls", "connects", "finished"} <= set(frame.columns), where
            columns = [frame.columns[name] for name in ("calls", "connects", "finished")]
            for minute in zip(*columns, strict=True):
                assert all(isinstance(value, float) for value in minute), (where, minute)
                progress[:] = [total + value for total, value in zip(progress, minute, strict=True)]
            return
        # The minute still open: a stat panel of one row.
        assert frame.rows == 1, (where, frame)
        assert {"minute", "calls", "connects", "finished"} <= set(frame.columns), where
        row = [frame.columns[name][0] for name in ("calls", "connects", "finished")]
        progress[:] = [total + value for total, value in zip(progress, row, strict=True)]

    def check_progress_adds_up(self) -> None:
        """Per minute, then summed over the day: the campaign's calls, connects, finished."""
        assert set(self.progress) == set(self.served)
        for campaign, (calls, connects, finished) in self.progress.items():
            served = self.served[campaign]
            assert (calls, connects, finished) == (
                served["totalCalledCount"],
                served["totalCallSucc"],
                served["totalFinishCount"],
            ), campaign
