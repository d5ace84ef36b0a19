"""deploy/grafana: the dashboards read the keys the engine writes, and their date is the VDN's.

What needs no workload: the structure of the dashboard files, every key a panel or a variable
names rebuilt with engine/keys.py's KeyLayout (a renamed key fails here), and the script that
tells the dashboards which day is "today", run in the real Redis against Python's calendar.
tests/test_live_views.py then runs every target against the counters of a real workload.
"""

from __future__ import annotations

import json
import random
import shlex
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
import yaml

from isales_stats.core.days import today_in
from isales_stats.core.keys import HOUR_COUNTERS, KeyLayout
from isales_stats.core.settings import Settings, parse_time_zone
from tests.support.grafana import (
    ALL,
    DATASOURCE_UID,
    GRAFANA,
    interpolate,
    load_dashboards,
    panel_targets,
    run_custom_command,
    variable_names,
    variables_of,
)

# What each dashboard must show, as the KeyLayout methods its panels read.
PANEL_KEYS = {
    "vdn-overview": {"campaign_totals", "campaign_day"},
    "campaign": {"campaign_totals", "campaign_day", "batch_totals", "batch_day"},
    "progress": {"campaign_progress", "campaign_progress_current"},
    "history": {"campaign_day", "day_hours", "day_fails"},
}
# Commands of the plugin whose keys are named by keyName (the emulation runs these).
KEY_COMMANDS = {"hgetall", "hmget", "xrange", "smembers", "hkeys"}
SAMPLE = {
    "prefix": "isales",
    "vdn": "7",
    "campaign": "C-1",
    "batch": "batch 1",
    "day": "2026-11-28",
    "days": "2026-11-28",  # the history's day, one of its rows
}
TIME_CALL = "redis.call('TIME')"


def expected_keys(layout: KeyLayout, values: dict[str, str]) -> dict[str, str]:
    """Key -> the KeyLayout method that spells it, for one campaign, batch and day."""
    vdn, campaign, batch, day = (
        int(values["vdn"]),
        values["campaign"],
        values["batch"],
        values["day"],
    )
    return {
        layout.campaign_totals(vdn, campaign): "campaign_totals",
        layout.campaign_day(vdn, campaign, day): "campaign_day",
        layout.batch_totals(vdn, campaign, batch): "batch_totals",
        layout.batch_day(vdn, campaign, batch, day): "batch_day",
        layout.campaign_progress(vdn, campaign): "campaign_progress",
        layout.campaign_progress_current(vdn, campaign): "campaign_progress_current",
        layout.day_hours(vdn, campaign, values["days"]): "day_hours",
        layout.day_fails(vdn, campaign, values["days"]): "day_fails",
    }


def variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [item for item in variables_of(dashboard) if item["name"] == name]
    return found


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return load_dashboards()


def test_the_four_dashboards_are_provisioned(dashboards: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == set(PANEL_KEYS)
    uids = [board["uid"] for board in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in dashboards.items():
        assert "isales-stats" in board["tags"], name
        # Grafana ignores an "id" from a file only when it is null or absent.
        assert board.get("id") is None, name
        json.dumps(board)  # plain JSON, nothing Grafana would have to guess


def test_every_panel_reads_the_provisioned_redis(dashboards: dict[str, dict[str, Any]]) -> None:
    for item in (item for name, board in dashboards.items() for item in panel_targets(name, board)):
        where = f"{item.dashboard}: {item.panel['title']}"
        assert item.panel["datasource"]["uid"] == DATASOURCE_UID, where
        assert item.target["datasource"]["uid"] == DATASOURCE_UID, where
        assert item.target.get("command") in KEY_COMMANDS, where
        assert item.target.get("type") == "command", where
    for name, board in dashboards.items():
        for declared in variables_of(board):
            if declared["type"] == "query":
                assert declared["datasource"]["uid"] == DATASOURCE_UID, name


def test_multi_value_variables_are_only_used_where_they_repeat(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    """Outside a repeat, Grafana writes a multi-value variable as {a,b}: never a key."""
    for name, board in dashboards.items():
        multi = {item["name"] for item in variables_of(board) if item.get("multi")}
        repeats = {item.repeat for item in panel_targets(name, board)} - {None}
        assert repeats <= multi, name
        for item in panel_targets(name, board):
            used_multi = set(variable_names(item.target["keyName"])) & multi
            assert used_multi <= {item.repeat}, f"{name}: {item.panel['title']} uses {used_multi}"
        for declared in variables_of(board):
            if declared.get("multi"):
                assert declared["includeAll"], name
                assert declared["current"]["value"] == [ALL], name


def test_every_key_is_spelled_as_key_layout_spells_it(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    layout = KeyLayout(SAMPLE["prefix"])
    expected = expected_keys(layout, SAMPLE)
    for name, board in dashboards.items():
        used = set()
        for item in panel_targets(name, board):
            key = interpolate(item.target["keyName"], SAMPLE)
            assert key in expected, (
                f"{name}: {item.panel['title']} reads {key!r}, not a KeyLayout key"
            )
            used.add(expected[key])
        assert used == PANEL_KEYS[name], name
        campaigns = variable(board, "campaign")["query"]
        assert interpolate(campaigns, SAMPLE).split() == [
            "SMEMBERS",
            layout.vdn_campaigns(int(SAMPLE["vdn"])),
        ]
    hours = [
        item.target["field"]
        for item in panel_targets("history", dashboards["history"])
        if item.target["command"] == "hmget"
    ]
    # Every hour a day can have (25 on the day clocks go back), as engine/count_events/ names them.
    assert hours == [
        " ".join(f"{hour:02d}:{HOUR_COUNTERS[name]}" for hour in range(25))
        for name in ("dailyCalledCount", "dailyCallSucc")
    ]
    batches = variable(dashboards["campaign"], "batch")["query"]
    assert interpolate(batches, SAMPLE).split() == [
        "HKEYS",
        layout.campaign_batches(int(SAMPLE["vdn"]), SAMPLE["campaign"]),
    ]


def test_the_key_prefix_is_the_default_one(dashboards: dict[str, dict[str, Any]]) -> None:
    default_prefix = Settings.model_fields["key_prefix"].default
    for name, board in dashboards.items():
        prefix = variable(board, "prefix")
        assert (prefix["type"], prefix["query"], prefix["hide"]) == (
            "constant",
            default_prefix,
            2,
        ), name


def test_the_dashboards_day_is_the_default_zones(dashboards: dict[str, dict[str, Any]]) -> None:
    """The UTC offset the day variable starts with, and the zone of the time range ("today" in
    the progress graph), are those of ISALES_DEFAULT_TIME_ZONE."""
    zone = parse_time_zone(Settings.model_fields["default_time_zone"].default)
    now = datetime.now(UTC)
    offset = zone.utcoffset(now)
    assert offset is not None
    for name, board in dashboards.items():
        assert ZoneInfo(board["timezone"]).utcoffset(now) == offset, name
        assert board["time"] == {"from": "now/d", "to": "now"}, name
        if any(
            "day" in variable_names(item.target["keyName"]) for item in panel_targets(name, board)
        ):
            minutes = int(variable(board, "utc_offset")["query"])
            assert timedelta(minutes=minutes) == offset, name


def test_the_datasource_is_provisioned_with_the_dashboards_uid() -> None:
    declared = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "redis.yaml").read_text())
    assert [source["uid"] for source in declared["datasources"]] == [DATASOURCE_UID]


def _day_query(dashboards: dict[str, dict[str, Any]]) -> str:
    queries = {variable(board, "day")["query"] for board in dashboards.values() if _has_day(board)}
    assert len(queries) == 1, "the dashboards compute the day differently"
    return str(queries.pop())


def _has_day(board: dict[str, Any]) -> bool:
    return any(item["name"] == "day" for item in variables_of(board))


@pytest.mark.stack
def test_the_day_script_is_the_calendar_date(
    dashboards: dict[str, dict[str, Any]], local_stack: Settings
) -> None:
    """The day variable's script, with Redis' clock swapped for given instants, against Python's
    calendar: leap days, ends of years and months, both sides of UTC, a thousand random instants."""
    query = _day_query(dashboards)
    assert query.count(TIME_CALL) == 1
    fixed_clock = query.replace(TIME_CALL, "{ARGV[2], '0'}").replace("$utc_offset", "$offset $at")
    instants = [
        datetime(2024, 2, 28, 16, 0, tzinfo=UTC),
        datetime(2024, 2, 29, 15, 59, 59, tzinfo=UTC),
        datetime(2024, 2, 29, 16, 0, tzinfo=UTC),
        datetime(2100, 2, 28, 16, 0, tzinfo=UTC),
        datetime(2000, 2, 29, 12, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC),
        datetime(2026, 12, 31, 16, 0, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
    ]
    rng = random.Random(7)
    instants += [datetime.fromtimestamp(rng.randrange(0, 4_102_444_800), UTC) for _ in range(1000)]
    offsets = [480, -300, 330, 0, 840, -720]
    cases = [(instant, rng.choice(offsets)) for instant in instants]
    with redis.Redis.from_url(local_stack.redis_url) as client:
        pipe = client.pipeline(transaction=False)
        for instant, offset in cases:
            words = interpolate(
                fixed_clock, {"offset": str(offset), "at": str(int(instant.timestamp()))}
            )
            pipe.execute_command(*shlex.split(words))
        answers = [answer.decode() for answer in pipe.execute()]
    for (instant, offset), answer in zip(cases, answers, strict=True):
        expected = instant.astimezone(timezone(timedelta(minutes=offset))).date().isoformat()
        assert answer == expected, f"{instant} at {offset:+} min: {answer}"


@pytest.mark.stack
def test_the_history_lists_the_last_days_today_first(
    dashboards: dict[str, dict[str, Any]], local_stack: Settings
) -> None:
    """The days variable's script, with Redis' clock swapped for given instants: the same
    calendar as the day script, going back across months, years and a leap day."""
    query = variable(dashboards["history"], "days")["query"]
    assert query.count(TIME_CALL) == 1
    fixed = query.replace(TIME_CALL, "{ARGV[3], '0'}").replace("$utc_offset", "$offset")
    instants = [
        datetime(2024, 3, 1, 16, 0, tzinfo=UTC),
        datetime(2027, 1, 5, 3, 0, tzinfo=UTC),
        datetime(2026, 12, 6, 15, 59, 59, tzinfo=UTC),
    ]
    with redis.Redis.from_url(local_stack.redis_url) as client:
        for instant in instants:
            for offset in (480, -300):
                words = shlex.split(interpolate(fixed, {"offset": str(offset)}))
                answer = client.execute_command(*words, str(int(instant.timestamp())))
                today = instant.astimezone(timezone(timedelta(minutes=offset))).date()
                count = int(words[-1])
                assert [day.decode() for day in answer] == [
                    (today - timedelta(days=back)).isoformat() for back in range(count)
                ], (instant, offset)


@pytest.mark.stack
def test_the_day_variable_says_today(
    dashboards: dict[str, dict[str, Any]], local_stack: Settings
) -> None:
    zone = parse_time_zone(local_stack.default_time_zone)
    with redis.Redis.from_url(local_stack.redis_url) as client:
        for name, board in dashboards.items():
            if not _has_day(board):
                continue
            query = interpolate(variable(board, "day")["query"], {"utc_offset": "480"})
            before = today_in(zone).isoformat()
            (answer,) = run_custom_command(client, query)
            assert answer in {before, today_in(zone).isoformat()}, name


def test_panel_targets_follow_expanded_rows() -> None:
    """The emulation's reading of a layout: a panel belongs to the expanded row above it."""
    board = {
        "panels": [
            {"type": "row", "repeat": "campaign", "panels": []},
            {"type": "stat", "targets": [{"keyName": "a"}]},
            {"type": "row", "panels": [{"type": "stat", "targets": [{"keyName": "b"}]}]},
        ]
    }
    found = [(item.target["keyName"], item.repeat) for item in panel_targets("x", board)]
    assert found == [("a", "campaign"), ("b", None)]
