"""The pipeline dashboard's and the alert rules' PromQL, and the isales metrics they name."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "deploy" / "grafana" / "dashboards" / "operations" / "pipeline.json"
PROMETHEUS = ROOT / "deploy" / "prometheus"
METRIC = re.compile(r"\b(isales_[a-z_]+)\b")


def pipeline_expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of the pipeline dashboard."""
    panels = json.loads(PIPELINE.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def metrics_named(expression: str) -> set[str]:
    return set(METRIC.findall(expression))
