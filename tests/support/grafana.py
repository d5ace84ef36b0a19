"""Grafana's side of the dashboards, done by hand: what the Redis data source would send and get.

Grafana cannot be installed where this project is built, so the tests play its part: they read
the dashboard JSON files, resolve the template variables as Grafana does (its ``$name`` syntax;
query variables run their query through the data source), and run every panel target as the
Redis plugin runs it: redis-datasource ``REDIS_PLUGIN_VERSION`` (RedisGrafana's
grafana-redis-datasource, the version docker-compose.yml installs; files named below are of its
tag v2.2.0):

* a target with ``query`` is a custom command: the text is split like a shell line and sent as is
  (variable queries are always of this kind);
* ``hgetall`` sends HGETALL keyName, one row of fields (numbers where they parse as numbers);
* ``xrange`` sends XRANGE keyName start end: start and end default to the dashboard's time range
  as ``{from ms}-0`` and ``{to ms}-0``, and each entry becomes a row with ``$streamId``,
  ``$time`` (from the id's milliseconds) and the entry's fields (pkg/redis-stream.go,
  queryXRange);
* ``smembers`` and ``hkeys`` one column of members;
* ``hmget`` sends HMGET keyName with the fields of ``field`` (split like a shell line), one row
  of a column per field, a number where the value parses as one, else text ("" for a missing
  field) (pkg/redis-hash.go, queryHMGet).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCE_UID = "isales-redis"
# The plugin version this module plays; tests/test_compose.py holds docker-compose.yml to it.
REDIS_PLUGIN_VERSION = "2.2.0"
ALL = "$__all"

# Grafana's template-variable syntax (public/app/features/variables/utils.ts, variableRegex):
# $name, [[name]] or [[name:format]], ${name}, ${name.field} or ${name:format}.
VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")

Dashboard = dict[str, Any]


def load_dashboards() -> dict[str, Dashboard]:
    """Every dashboard JSON file of deploy/grafana/dashboards, by file name without .json."""
    found = {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}
    assert found, f"no dashboards in {DASHBOARDS}"
    return found


def variable_names(text: str) -> list[str]:
    """The template variables ``text`` refers to, in order."""
    return [
        next(name for name in (match.group(1), match.group(2), match.group(4)) if name)
        for match in VARIABLE.finditer(text)
    ]


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """``text`` with its variables replaced by (single) values; an unknown one is an error."""

    def value_of(match: re.Match[str]) -> str:
        name = next(name for name in (match.group(1), match.group(2), match.group(4)) if name)
        if name not in values:
            raise KeyError(f"{text!r} refers to ${name}, which has no value here")
        return values[name]

    return VARIABLE.sub(value_of, text)


def variables_of(dashboard: Dashboard) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = dashboard["templating"]["list"]
    return found


def default_value(variable: Mapping[str, Any]) -> str:
    """A constant's or a textbox's value as the dashboard ships it."""
    return str(variable["query"])


@dataclass
class Frame:
    """What the plugin answers for one target: named columns of equal length."""

    columns: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()), []))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def run_custom_command(client: redis.Redis, query: str) -> list[str]:
    """A custom command (variable queries): split like a shell line, sent as is, values flat."""
    words = shlex.split(query)
    assert words, "an empty query"
    reply = client.execute_command(*words)  # type: ignore[no-untyped-call]  # redis-py's own
    if isinstance(reply, list | set):
        return [_text(item) for item in reply]
    return [_text(reply)]


def run_target(client: redis.Redis, target: Mapping[str, Any], from_ms: int, to_ms: int) -> Frame:
    """One (already interpolated) panel target, as redis-datasource runs it."""
    if target.get("query"):
        return Frame({"Value": run_custom_command(client, target["query"])})
    command, key = target["command"], target["keyName"]
    if command == "hgetall":
        reply = client.hgetall(key)
        return Frame(
            {_text(name): [_number_or_text(_text(value))] for name, value in reply.items()}
        )
    if command == "hmget":
        names = shlex.split(target["field"])
        found = client.hmget(key, names)
        return Frame(
            {
                name: [_number_or_text("" if value is None else _text(value))]
                for name, value in zip(names, found, strict=True)
            }
        )
    if command in {"smembers", "hkeys"}:
        members = client.smembers(key) if command == "smembers" else client.hkeys(key)
        return Frame({"Value": sorted(_text(member) for member in members)})
    if command == "xrange":
        start = target.get("start") or f"{from_ms}-0"
        end = target.get("end") or f"{to_ms}-0"
        entries = client.xrange(key, start, end, count=target.get("count") or None) or []
        frame = Frame({"$streamId": [], "$time": []})
        for entry_id, fields in entries:
            identifier = _text(entry_id)
            frame.columns["$streamId"].append(identifier)
            milliseconds = int(identifier.split("-")[0])
            frame.columns["$time"].append(datetime.fromtimestamp(milliseconds / 1000, UTC))
            for name, value in (fields or {}).items():
                frame.columns.setdefault(_text(name), []).append(_number_or_text(_text(value)))
        return frame
    raise AssertionError(f"this emulation does not run {command!r}: add it or use another command")


@dataclass(frozen=True)
class PanelTarget:
    """A target with the panel it belongs to and the variable its row or panel repeats over."""

    dashboard: str
    panel: dict[str, Any]
    target: dict[str, Any]
    repeat: str | None


def panel_targets(name: str, dashboard: Dashboard) -> Iterator[PanelTarget]:
    """Every target of every panel; panels below an expanded row belong to that row."""
    row_repeat: str | None = None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row_repeat = panel.get("repeat")
            # A collapsed row keeps its panels inside it.
            for inner in panel.get("panels", []):
                for target in inner.get("targets", []):
                    yield PanelTarget(name, inner, target, inner.get("repeat") or row_repeat)
            continue
        for target in panel.get("targets", []):
            yield PanelTarget(name, panel, target, panel.get("repeat") or row_repeat)


def resolve_variables(
    dashboard: Dashboard, client: redis.Redis, given: Mapping[str, str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(values, options) of every variable, in the dashboard's order, as Grafana resolves them.

    ``given`` sets constants, text boxes and the choice of single-value variables (else their
    shipped values, and a single-value query variable its first option, as Grafana picks it).
    A query variable runs its query, with the variables before it resolved, through the data
    source: its options. A multi-value one with "All" selected stands for all its options.
    """
    values: dict[str, list[str]] = {}
    options: dict[str, list[str]] = {}
    for variable in variables_of(dashboard):
        name, kind = variable["name"], variable["type"]
        if kind in {"constant", "textbox", "custom"}:
            values[name] = [given.get(name, default_value(variable))]
            continue
        assert kind == "query", f"{name}: a {kind} variable is not emulated"
        assert variable["datasource"]["uid"] == DATASOURCE_UID, name
        single = {key: found[0] for key, found in values.items() if len(found) == 1}
        for used in variable_names(variable["query"]):
            assert used in single, f"{name}'s query uses ${used}, not a single value before it"
        found = run_custom_command(client, interpolate(variable["query"], single))
        options[name] = sorted(found) if variable.get("sort") == 1 else found
        if variable.get("multi"):
            values[name] = options[name]
        elif name in given:
            assert given[name] in options[name], f"{name}={given[name]!r} is not an option"
            values[name] = [given[name]]
        else:
            values[name] = options[name][:1]
    return values, options


def scopes(item: PanelTarget, values: Mapping[str, Sequence[str]]) -> Iterator[dict[str, str]]:
    """The single-valued variable scopes a target is run in: one per value of its repeat."""
    single = {name: found[0] for name, found in values.items() if len(found) == 1}
    if item.repeat is None:
        yield single
        return
    for value in values[item.repeat]:
        yield {**single, item.repeat: value}
