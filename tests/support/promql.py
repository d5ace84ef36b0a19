"""The decisions dashboard's PromQL, run against one scrape of the API's /metrics.

Grafana and Prometheus cannot be installed here. Every target of
deploy/grafana/dashboards/decisions/ is written in one form, ``max by (labels) (metric{matchers})``
(the max folds the replicas of the API, which all export the same figures), and this module
evaluates exactly that form over the samples of a scrape, as Prometheus would at the scrape's
instant: the samples whose labels match every ``label="value"`` matcher, grouped by the ``by``
labels (a label a sample lacks groups as ""), the largest of each group. Anything else is refused,
so that a dashboard edit outside the form fails its test instead of going unchecked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DECISIONS = ROOT / "deploy" / "grafana" / "dashboards" / "decisions" / "abandon-and-pacing.json"

_QUERY = re.compile(
    r"max by \((?P<by>[a-z_]+(?:, [a-z_]+)*)\) \((?P<metric>[a-z_]+)\{(?P<matchers>[^{}]*)\}\)"
)
_MATCHER = re.compile(r'(?P<label>[a-z_]+)="(?P<value>[^"]*)"')


@dataclass(frozen=True)
class Query:
    metric: str
    by: tuple[str, ...]
    matchers: Mapping[str, str]


@dataclass(frozen=True)
class Target:
    panel: Mapping[str, Any]
    target: Mapping[str, Any]


def parse(expression: str) -> Query:
    """The query of ``expression``, or ValueError when it is not of the one form."""
    found = _QUERY.fullmatch(expression)
    if found is None:
        raise ValueError(f"not max by (...) (metric{{...}}): {expression!r}")
    matchers = found["matchers"].split(", ")
    pairs = [_MATCHER.fullmatch(matcher) for matcher in matchers]
    if any(pair is None for pair in pairs):
        raise ValueError(f'matchers other than label="value": {expression!r}')
    return Query(
        found["metric"],
        tuple(found["by"].split(", ")),
        {pair["label"]: pair["value"] for pair in pairs if pair is not None},
    )


def load() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DECISIONS.read_text())
    return board


def targets(board: Mapping[str, Any]) -> Iterator[Target]:
    """Every target of every panel (rows hold none: the dashboard's rows are expanded)."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield Target(panel, target)


def samples(exposition: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample of a scrape."""
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    ]


def evaluate(
    expression: str,
    scraped: list[tuple[str, dict[str, str], float]],
    variables: Mapping[str, str],
) -> dict[tuple[str, ...], float]:
    """``expression`` (its $variables given) at the scrape's instant: by-labels -> value."""
    for variable, given in variables.items():
        expression = expression.replace(f"${variable}", given)
    query = parse(expression)
    groups: dict[tuple[str, ...], float] = {}
    for name, labels, value in scraped:
        if name != query.metric:
            continue
        if any(labels.get(label, "") != wanted for label, wanted in query.matchers.items()):
            continue
        key = tuple(labels.get(label, "") for label in query.by)
        groups[key] = max(groups.get(key, value), value)
    return groups
