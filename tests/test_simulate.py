"""The traffic simulator, its prediction (``--expect``), and both against the real engine."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isales_stats.client import StatisticsClient
from isales_stats.core.events import event_from_json
from isales_stats.core.reference_model import GMT8, ReferenceModel, reference_statistics
from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.simulator import (
    Timeline,
    TrafficOptions,
    simulate_traffic,
    simulation_window,
)
from tests.support import strategies
from tests.support.api_process import ApiProcess
from tests.support.events import SCHEMA_PATH
from tests.support.processes import ServiceProcess, run_cli
from tests.support.waiting import wait_for

NOW_MS = int(time.time() * 1000)


def traffic(**changes: Any) -> list[dict[str, Any]]:
    options = TrafficOptions(**{"seed": 5, "records": 60, **changes})
    return list(simulate_traffic(options, NOW_MS, GMT8))


def day_of(event: dict[str, Any]) -> date:
    return datetime.fromtimestamp(event["occurredAt"] / 1000, GMT8).date()


# --- the traffic ------------------------------------------------------------------------------


@pytest.mark.parametrize("timeline", ["day", "midnight", "live"])
def test_the_same_seed_gives_the_same_traffic(timeline: Timeline) -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        events = simulate_traffic(TrafficOptions(seed=seed, timeline=timeline), NOW_MS, GMT8)
        if timeline == "live":  # stamped by the clock as they are taken
            return [{**event, "occurredAt": 0} for event in events]
        return list(events)

    assert run(11) == run(11)
    assert run(11) != run(12)


@pytest.mark.parametrize("timeline", ["day", "midnight", "live"])
def test_traffic_keeps_the_contract_and_the_dialers_rules(timeline: Timeline) -> None:
    events = traffic(timeline=timeline, campaigns=2, batches=3)
    start, end = simulation_window(timeline, NOW_MS, GMT8)
    by_record: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    schema = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    for event in events:
        event_from_json(event)  # raises on anything the worker would refuse
        schema.validate(event)
        assert event["occurredAt"] <= (NOW_MS if timeline != "live" else int(time.time() * 1000))
        if timeline != "live":
            assert start <= event["occurredAt"] <= end
        by_record[event["campaignId"], event["dataId"]].append(event)

    kinds = {event["eventType"] for event in events}
    assert kinds == {"data.added", "call.result", "data.removed"}
    assert {event["campaignId"] for event in events} == {"1001", "1002"}
    assert len({(event["campaignId"], event["batchId"]) for event in events}) == 6
    assert sum(1 for event in events if event["eventType"] == "data.added") == 2 * 3 * 60
    outcomes = [event for event in events if event["eventType"] == "call.result"]
    assert 0.3 < sum(event["callStatus"] == 6 for event in outcomes) / len(outcomes) < 0.6
    assert any(event["failCode"] == "00538" and event["final"] for event in outcomes)

    for record_events in by_record.values():
        assert record_events[0]["eventType"] == "data.added"  # imported before anything else
        calls = [event for event in record_events if event["eventType"] == "call.result"]
        distinct = {event["callId"]: event for event in calls}
        assert len(distinct) <= 3  # --max-attempts
        # Only the last attempt can be final, and it is when it connected or used the attempts.
        attempts = list(distinct.values())
        assert not any(event["final"] for event in attempts[:-1])
        for event in attempts:
            if event["callStatus"] == 6:
                assert event["final"]
                assert event is attempts[-1]
        if len(attempts) == 3:
            assert attempts[-1]["final"]
        # A repeated result is the same push again, whole.
        for event in calls:
            assert event == distinct[event["callId"]]
        removals = [n for n, e in enumerate(record_events) if e["eventType"] == "data.removed"]
        if removals:
            assert all(e["eventType"] != "call.result" for e in record_events[removals[0] :])


def test_midnight_traffic_moves_the_counters_of_two_days() -> None:
    # A fixed "now" well after midnight: the real clock would leave too little of today just
    # after 00:00 GMT+08:00.
    now = datetime(2026, 11, 28, 15, 0, tzinfo=GMT8)
    options = TrafficOptions(seed=5, records=60, timeline="midnight")
    events = list(simulate_traffic(options, int(now.timestamp() * 1000), GMT8))
    assert {day_of(event) for event in events} == {date(2026, 11, 27), date(2026, 11, 28)}


# --- the prediction: the reference model, fed the events as they go on the wire --------------


@pytest.mark.parametrize("timeline", ["day", "midnight", "live"])
def test_the_prediction_is_the_reference_models(timeline: str) -> None:
    """``--expect`` feeds the model each event in its wire form (``CallEvent.to_json``)."""
    events = traffic(timeline=timeline, duplicate_rate=0.2, remove_rate=0.2)
    expected = reference_statistics(event_from_json(event).to_json() for event in events)
    model = reference_statistics(events)
    for day in sorted({day_of(event) for event in events}):
        assert expected.count_detail(1, day) == model.count_detail(1, day)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_prediction_is_the_reference_models_for_any_stream(data: st.DataObject) -> None:
    """Duplicates, reordering and contradicting batches, two VDNs in two zones."""
    events = data.draw(strategies.records())
    events = data.draw(strategies.contradicting(events))
    events = data.draw(strategies.delivered(events))
    expected = ReferenceModel(strategies.zone_of)
    for event in events:
        expected.add(event_from_json(event).to_json())
    model = reference_statistics(events, vdn_zones=strategies.VDN_ZONES)
    first = strategies.FIRST_MOMENT.date()
    for vdn_id in (1, 2):
        for day in (first, first + timedelta(days=1), first + timedelta(days=2)):
            assert expected.count_detail(vdn_id, day) == model.count_detail(vdn_id, day)


# --- the command ------------------------------------------------------------------------------


def test_simulate_writes_the_traffic_and_stops_at_the_limits(
    local_stack: Settings, tmp_path: Path
) -> None:
    output = tmp_path / "events.jsonl"
    result = run_cli(
        local_stack, "simulate", "--seed", "3", "--events", "250", "--output", str(output)
    )
    assert result.returncode == 0, result.stderr
    lines = output.read_text().splitlines()
    assert len(lines) == 250
    assert "simulated 250 events" in result.stdout
    assert "seed 3" in result.stdout

    began = time.monotonic()
    paced = run_cli(
        local_stack,
        "simulate",
        "--rate",
        "200",
        "--duration",
        "1.5",
        "--output",
        "-",
        "--seed",
        "4",
    )
    assert paced.returncode == 0, paced.stderr
    assert time.monotonic() - began > 1.2
    assert 200 <= len(paced.stdout.splitlines()) <= 320  # 1.5 s at 200 events/s
    assert "events/s" in paced.stderr  # the live line


@pytest.mark.stack
def test_the_engine_serves_what_simulate_expected(test_settings: Settings, tmp_path: Path) -> None:
    """simulate -> Kafka -> worker -> Redis -> API, against --expect and the reference model."""
    ensure_topics(test_settings)
    now = datetime.fromtimestamp(time.time(), GMT8).isoformat(timespec="milliseconds")
    shape = ["--seed", "21", "--timeline", "midnight", "--now", now, "--campaigns", "2"]
    shape += ["--duplicate-rate", "0.05", "--remove-rate", "0.05", "--records", "150"]
    expect = tmp_path / "expect.json"
    sent = run_cli(test_settings, "simulate", *shape, "--expect", str(expect))
    assert sent.returncode == 0, sent.stderr
    written = run_cli(test_settings, "simulate", *shape, "--output", str(tmp_path / "sent.jsonl"))
    assert written.returncode == 0, written.stderr
    events = [json.loads(line) for line in (tmp_path / "sent.jsonl").read_text().splitlines()]
    prediction = json.loads(expect.read_text())
    today = date.fromisoformat(prediction["day"])
    assert prediction["countDetail"] == reference_statistics(events).count_detail(1, today)

    worker = ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0)
    api = ApiProcess(test_settings, log_dir=tmp_path)
    with worker, api, StatisticsClient(api.url) as client:
        served = wait_for(
            lambda: (detail := client.count_detail(1)) == prediction["countDetail"] and detail, 60
        )
        assert served == prediction["countDetail"], f"{client.count_detail(1)}\n{worker.log()}"
