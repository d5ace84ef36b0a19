"""The decisions dashboard: Prometheus gauges the API works out at each scrape, and their panels.

Without a workload: the dashboard is provisioned beside the others, reads the provisioned
Prometheus, and every target is of the one form tests/support/promql.py runs, naming a gauge
api/decision_metrics.py exports with labels it has. With one (events counted by the engine into
the real Redis, the API in process): the operations port's /metrics carries the abandonrate and
pacing interfaces' own figures, campaign by campaign and for the VDN, and every target of the
dashboard, run against that scrape, finds them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from isales_stats.api.decision_metrics import DECISION_METRICS, STATES, STATUS_VALUES
from isales_stats.core.interface import ABANDON_RATE_PATH, PACING_PATH
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from tests.support import promql
from tests.support.app_client import serve_with_operations
from tests.support.counting import count_events
from tests.support.events import ADDED, CALL, call_event

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "deploy" / "grafana"
PROMETHEUS_SOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    return promql.load()


def test_the_dashboard_is_provisioned_beside_the_others(board: dict[str, Any]) -> None:
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "isales-stats.yaml").read_text()
    )["providers"][0]
    # The provider reads the mounted folder and those under it (operations/, decisions/).
    assert provider["type"] == "file"
    assert promql.DECISIONS.is_relative_to(GRAFANA / "dashboards")
    others = [
        json.loads(path.read_text())
        for path in (GRAFANA / "dashboards").rglob("*.json")
        if path != promql.DECISIONS
    ]
    assert board["uid"] not in {other["uid"] for other in others}
    assert board.get("id") is None  # Grafana ignores a file's id only when null or absent
    assert "isales-stats" in board["tags"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


def test_every_panel_reads_the_provisioned_prometheus(board: dict[str, Any]) -> None:
    (source,) = yaml.safe_load(PROMETHEUS_SOURCE.read_text())["datasources"]
    expected = {"type": "prometheus", "uid": source["uid"]}
    for item in promql.targets(board):
        assert item.panel["datasource"] == expected, item.panel["title"]
        assert item.target["datasource"] == expected, item.panel["title"]
    (vdn,) = board["templating"]["list"]
    assert vdn["datasource"] == expected
    assert vdn["query"]["query"] == "label_values(isales_decisions_read_ok, vdn)"
    assert "vdn" in DECISION_METRICS["isales_decisions_read_ok"][1]


def test_every_target_names_an_exported_gauge_and_its_labels(board: dict[str, Any]) -> None:
    seen = set()
    for item in promql.targets(board):
        where = f"{item.panel['title']}: {item.target['expr']}"
        query = promql.parse(item.target["expr"])
        assert query.metric in DECISION_METRICS, where
        labels = set(DECISION_METRICS[query.metric][1])
        assert set(query.by) <= labels, where
        assert set(query.matchers) <= labels, where
        # One VDN at a time: a Prometheus that scrapes several would mix them otherwise.
        assert query.matchers["vdn"] == "$vdn", where
        if "scope" in labels:
            assert query.matchers.get("scope") in {"campaign", "vdn"}, where
        seen.add(query.metric)
    # The two things the dashboard is for: the 30-day rate against its limit, and the pace.
    assert {
        "isales_abandon_rate_percent",
        "isales_abandon_limit_percent",
        "isales_abandon_status",
        "isales_pacing_percent_complete",
        "isales_pacing_calls_per_minute",
        "isales_pacing_eta_seconds",
    } <= seen


def test_tables_name_the_column_of_each_of_their_queries(board: dict[str, Any]) -> None:
    """A table merges its instant queries; each value column ("Value #<refId>") is renamed."""
    tables = [panel for panel in board["panels"] if panel["type"] == "table"]
    assert tables
    for panel in tables:
        refs = {target["refId"] for target in panel["targets"]}
        assert all(
            target.get("instant") and target["format"] == "table" for target in panel["targets"]
        )
        (merge, organize) = panel["transformations"]
        assert merge["id"] == "merge"
        renamed = organize["options"]["renameByName"]
        assert set(renamed) == {f"Value #{ref}" for ref in refs}, panel["title"]
        assert len(set(renamed.values())) == len(refs), panel["title"]


def test_the_status_mapping_is_the_exported_one(board: dict[str, Any]) -> None:
    mappings = [
        mapping for panel in board["panels"] for mapping in _mappings(panel.get("fieldConfig", {}))
    ]
    assert mappings
    for mapping in mappings:
        shown = {int(value): option["text"] for value, option in mapping["options"].items()}
        assert shown == {value: status for status, value in STATUS_VALUES.items()}


def _mappings(field_config: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = list(field_config.get("defaults", {}).get("mappings", []))
    for override in field_config.get("overrides", []):
        for prop in override["properties"]:
            if prop["id"] == "mappings":
                found += prop["value"]
    return found


# --- on a workload ------------------------------------------------------------------------------

VDN, BROKEN_VDN = 1, 2
# campaign -> (records, attempts of the records called: C connected, A abandoned, N unanswered)
PLAN = {"c-over": (30, ["C"] * 20 + ["AC"] * 2), "c-ok": (20, ["C"] * 15 + ["NC"] * 3)}
OUTCOME = {
    "C": {"callStatus": 6, "failCode": "00000", "final": True},
    "A": {"callStatus": 5, "failCode": "00701", "final": False},
    "N": {"callStatus": 5, "failCode": "00603", "final": False},
}
Scraped = list[tuple[str, dict[str, str], float]]


def workload_events() -> list[dict[str, Any]]:
    events = []
    for campaign, (records, called) in PLAN.items():
        for record in range(records):
            common = {"vdnId": VDN, "campaignId": campaign, "dataId": f"r{record}"}
            events.append(call_event(ADDED, **common))
            attempts = called[record] if record < len(called) else ""
            for attempt, outcome in enumerate(attempts):
                events.append(
                    call_event(
                        CALL, **common, callId=f"{campaign}-{record}-{attempt}", **OUTCOME[outcome]
                    )
                )
    return events


def gauge(scraped: Scraped, name: str, **labels: str) -> float | None:
    found = [
        value
        for sample, have, value in scraped
        if sample == name and all(have.get(key, "") == wanted for key, wanted in labels.items())
    ]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def epoch_seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def check_scope(
    scraped: Scraped,
    labels: dict[str, str],
    rates: Mapping[str, Any],
    pace: Mapping[str, Any],
    now: str,
) -> None:
    """Every gauge of one scope is the figure the interfaces answer for it."""
    for window in ("today", "rolling24h", "rolling30d", "life"):
        at = {**labels, "window": window}
        rate = rates[window]
        assert gauge(scraped, "isales_abandoned_calls", **at) == rate["abandoned"], at
        assert gauge(scraped, "isales_abandon_live_calls", **at) == rate["denominator"], at
        assert gauge(scraped, "isales_abandon_rate_percent", **at) == rate["ratePercent"], at
        assert gauge(scraped, "isales_abandon_status", **at) == STATUS_VALUES[rate["status"]], at
    records = {
        "total": "totalRecords",
        "finished": "finishedRecords",
        "remaining": "remainingRecords",
    }
    for kind, name in records.items():
        assert gauge(scraped, "isales_pacing_records", **labels, records=kind) == pace[name], kind
    assert gauge(scraped, "isales_pacing_percent_complete", **labels) == pace["percentComplete"]
    for minutes in (5, 15, 60):
        over = {**labels, "window": f"{minutes}m"}
        assert (
            gauge(scraped, "isales_pacing_calls_per_minute", **over)
            == pace["callsPerMinute"][f"last{minutes}"]
        )
        assert (
            gauge(scraped, "isales_pacing_finished_per_minute", **over)
            == pace["finishedPerMinute"][f"last{minutes}"]
        )
    for period in ("today", "life"):
        assert (
            gauge(scraped, "isales_pacing_connect_rate_percent", **labels, period=period)
            == pace["connectRate"][period]
        )
    assert (
        gauge(scraped, "isales_pacing_attempts_per_finished_record", **labels)
        == pace["attemptsPerFinishedRecord"]
    )
    last = gauge(scraped, "isales_pacing_last_call_timestamp_seconds", **labels)
    assert last == (None if pace["lastCallAt"] is None else epoch_seconds(pace["lastCallAt"]))
    for state in STATES:
        assert gauge(scraped, "isales_pacing_state", **labels, state=state) == (
            state == pace["state"]
        )
    for bound in ("earliest", "latest"):
        left = gauge(scraped, "isales_pacing_eta_seconds", **labels, bound=bound)
        if pace["eta"] is None:
            assert left is None
        else:
            # The interface writes the moment to the second, the gauge the time left from the
            # scrape's own now: within the seconds between the two reads and their rounding.
            wanted = epoch_seconds(pace["eta"][bound]) - epoch_seconds(now)
            assert left is not None, bound
            assert abs(left - wanted) <= 2, (bound, left, wanted)


@pytest.mark.stack
@pytest.mark.anyio
async def test_a_scrape_carries_the_interfaces_figures_and_feeds_every_panel(
    test_settings: Settings, board: dict[str, Any]
) -> None:
    settings = test_settings.model_copy(update={"decision_metrics_vdns": (VDN, BROKEN_VDN)})
    await count_events(settings, workload_events())
    # Another VDN whose stored rows something else wrote: its read fails, VDN 1's does not.
    await count_events(settings, [call_event(ADDED, vdnId=BROKEN_VDN, campaignId="x", dataId="d")])
    with redis.Redis.from_url(settings.redis_url) as client:
        client.hset(KeyLayout(settings.key_prefix).campaign_rows(BROKEN_VDN, "x"), "", "not,a,row")

    async with serve_with_operations(settings) as (public, operations):

        async def answers() -> tuple[dict[str, Any], dict[str, Any]]:
            rates = (await public.get(ABANDON_RATE_PATH.format(vdn_id=VDN))).json()["data"]
            pace = (await public.get(PACING_PATH.format(vdn_id=VDN))).json()["data"]
            return rates, pace

        async def agreed() -> tuple[str, dict[str, Any], dict[str, Any]] | None:
            # The windows slide with the clock: the scrape between two equal answers.
            before = await answers()
            metrics = await operations.get("/metrics")
            after = await answers()
            assert metrics.status_code == 200
            same = before[0] == after[0] and _without_now(before[1]) == _without_now(after[1])
            return (metrics.text, *before) if same else None

        found = None
        for _ in range(20):  # a minute turning between the reads: read again
            found = await agreed()
            if found:
                break
    assert found, "the interfaces never answered the same twice in a row"
    text, rates, pace = found
    scraped = promql.samples(text)
    assert "isales_api_requests_total" in text  # the process' own metrics are still there
    assert gauge(scraped, "isales_decisions_read_ok", vdn=str(VDN)) == 1
    assert gauge(scraped, "isales_decisions_read_ok", vdn=str(BROKEN_VDN)) == 0
    assert gauge(scraped, "isales_abandon_limit_percent", vdn=str(VDN)) == rates["limitPercent"]
    assert gauge(scraped, "isales_abandon_warning_percent", vdn=str(VDN)) == rates["warningPercent"]
    assert gauge(scraped, "isales_decisions_campaigns_left_out", vdn=str(VDN)) == 0
    campaign_rates = {entry["campaignId"]: entry for entry in rates["campaigns"]}
    for entry in pace["campaigns"]:
        labels = {"vdn": str(VDN), "scope": "campaign", "campaign": entry["campaignId"]}
        check_scope(scraped, labels, campaign_rates[entry["campaignId"]], entry, pace["now"])
    check_scope(
        scraped, {"vdn": str(VDN), "scope": "vdn"}, rates["total"], pace["total"], pace["now"]
    )
    assert campaign_rates["c-over"]["rolling30d"]["status"] == "over"  # 2 of 22 live calls

    # Every target of the dashboard finds its figures in that scrape.
    for item in promql.targets(board):
        found_groups = promql.evaluate(item.target["expr"], scraped, {"vdn": str(VDN)})
        title = f"{item.panel['title']}: {item.target['expr']}"
        query = promql.parse(item.target["expr"])
        if query.by == ("campaign",):
            # Every campaign, but where the interface answers null (no series: an empty cell).
            assert set(found_groups) <= {(campaign,) for campaign in PLAN}, title
        assert found_groups, title


def _without_now(pace: dict[str, Any]) -> dict[str, Any]:
    """The pacing answer less what moves with every second (now, and the ETAs from it)."""

    def strip(scope: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in scope.items() if name not in {"eta", "batches"}}

    return {
        "total": strip(pace["total"]),
        "campaigns": [strip(campaign) for campaign in pace["campaigns"]],
    }


@pytest.mark.stack
@pytest.mark.anyio
async def test_campaigns_past_the_cap_are_counted_not_shown(test_settings: Settings) -> None:
    settings = test_settings.model_copy(
        update={"decision_metrics_vdns": (VDN,), "decision_metrics_max_campaigns": 1}
    )
    await count_events(settings, workload_events())
    async with serve_with_operations(settings) as (_, operations):
        scraped = promql.samples((await operations.get("/metrics")).text)
    shown = {
        labels["campaign"]
        for name, labels, _ in scraped
        if name == "isales_pacing_records" and labels["scope"] == "campaign"
    }
    assert shown == {"c-ok"}  # the first by campaignId
    assert gauge(scraped, "isales_decisions_campaigns_left_out", vdn=str(VDN)) == 1
    records = sum(records for records, _ in PLAN.values())
    assert (
        gauge(scraped, "isales_pacing_records", vdn=str(VDN), scope="vdn", records="total")
        == records
    )
