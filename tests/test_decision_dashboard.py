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
from pathlib import Path
from typing import Any

import pytest
import yaml

from isales_stats.api.decision_metrics import DECISION_METRICS, STATUS_VALUES
from tests.support import promql

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "deploy" / "grafana"
PROMETHEUS_SOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"


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
