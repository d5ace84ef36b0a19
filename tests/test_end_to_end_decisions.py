"""The abandon rate and the pacing, end to end: Kafka -> worker -> window hashes -> HTTP.

A VDN in New York's zone gets five weeks of calls of two campaigns (batches and records without
one), many abandoned (failCodes 00701, 00702, 01046) and many failed otherwise, a tenth of the
events published twice and the whole stream shuffled. The worker counts it from Kafka; the API
process, on the real clock, answers both interfaces; the reference model
(isales_stats/core/reference_model.py), fed the stream as published, says what each scope's
totals and windows are at the moment of the read, and isales_stats/core/decisions.py what they
make (its arithmetic has unit tests of its own, tests/test_decisions.py).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from isales_stats.core.days import MINUTE_MS
from isales_stats.core.decisions import (
    AbandonLimit,
    Basis,
    Counts,
    ScopeCounts,
    abandon_rates,
    pace,
    total_of,
)
from isales_stats.core.interface import ABANDON_RATE_PATH, PACING_PATH
from isales_stats.core.reference_model import ReferenceModel
from isales_stats.core.settings import Settings
from isales_stats.core.windows import WINDOWS, Now
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.publisher import EventPublisher
from tests.support.api_process import ApiProcess
from tests.support.app_client import JSON_HEADERS, statistics_path
from tests.support.clock import now_ms
from tests.support.events import ADDED, CALL, call_event
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack

VDN = 5
ZONE_NAME = "America/New_York"
ZONE = ZoneInfo(ZONE_NAME)
ABANDONED = ("00701", "00702", "01046")
OTHER_FAILURES = ("00603", "00537", "17", None)
# Where calls fall, back from now: the last hour (the pace windows), the last day, five weeks.
SPANS_MINUTES = (50, 26 * 60, 35 * 24 * 60)


def scenario(at_ms: int, draw: random.Random) -> list[dict[str, Any]]:
    """Records of C1 (batches B1, B2 and none) and C2, imported and called zero to three
    times, the first two of each campaign first called now (so that it is dialling);
    duplicates of a tenth of the events; shuffled."""
    events: list[dict[str, Any]] = []
    for campaign, batches in (("C1", ("B1", "B2", None)), ("C2", (None,))):
        for n in range(60):
            record = {"vdnId": VDN, "campaignId": campaign, "batchId": batches[n % len(batches)],
                      "dataId": f"d{n}"}  # fmt: skip
            first_ms = at_ms - (draw.randrange(SPANS_MINUTES[n % 3]) if n > 1 else 0) * MINUTE_MS
            events.append(call_event(ADDED, **record, occurredAt=first_ms - MINUTE_MS))
            attempts = draw.randrange(4)
            for attempt in range(attempts):
                connected = draw.random() < 0.35
                failure = draw.choice(ABANDONED + OTHER_FAILURES)
                events.append(
                    call_event(
                        CALL, **record, callId=f"{campaign}-{n}-{attempt}",
                        callStatus=6 if connected else 5,
                        final=connected or attempt == attempts - 1,
                        failCode=None if connected else failure,
                        occurredAt=min(first_ms + attempt * draw.randrange(60_000, 900_000),
                                       at_ms),
                    )
                )  # fmt: skip
    events += draw.sample(events, len(events) // 10)
    draw.shuffle(events)
    return events


def expected_counts(
    model: ReferenceModel, now: Now, campaign: str, batch: str | None = None
) -> ScopeCounts:
    """A scope's totals and windows at ``now``, as the model works them out."""
    totals = model.campaign_totals(VDN, campaign, batch)
    sums = model.window_sums(VDN, campaign, now, batch)
    today = model.window_buckets(VDN, campaign, now, batch).get(("day", now.day), (0, 0, 0, 0))
    return ScopeCounts.of(
        records=totals["totalCount"],
        calls=totals["totalCalledCount"],
        connects=totals["totalCallSucc"],
        finished=totals["totalFinishCount"],
        today=Counts(*today),
        life=Counts(*model.window_life(VDN, campaign, batch)),
        windows=MappingProxyType({name: Counts(*sums[name]) for name in WINDOWS}),
        last_call_minute=model.last_call_minute(VDN, campaign, batch),
    )


def scopes(model: ReferenceModel, now: Now) -> dict[tuple[str, str | None], ScopeCounts]:
    """Every campaign and batch of the VDN, and the total (key ("", None))."""
    expected: dict[tuple[str, str | None], ScopeCounts] = {}
    for campaign in model.campaigns(VDN):
        expected[campaign, None] = expected_counts(model, now, campaign)
        for batch in model.batches(VDN, campaign):
            expected[campaign, batch] = expected_counts(model, now, campaign, batch)
    campaigns = [counts for (_, batch), counts in expected.items() if batch is None]
    expected["", None] = total_of(campaigns)
    return expected


def answered(data: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    """An answer's scopes by (campaignId, batchId), the total as ("", None)."""
    found: dict[tuple[str, str | None], dict[str, Any]] = {("", None): data["total"]}
    for campaign in data["campaigns"]:
        found[campaign["campaignId"], None] = campaign
        for batch in campaign["batches"]:
            found[campaign["campaignId"], batch["batchId"]] = batch
    return found


def moment_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).astimezone(ZONE).isoformat()


def test_abandon_rate_and_pacing_of_a_counted_stream_equal_the_model(
    test_settings: Settings, tmp_path: Path
) -> None:
    settings = test_settings.model_copy(update={"vdn_time_zones": {VDN: ZONE_NAME}})
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    events = scenario(now_ms(), random.Random(seed))
    model = ReferenceModel(settings.time_zone_of, settings.abandon_fail_code_set)
    for event in events:
        model.add(event)
    ensure_topics(settings)
    with EventPublisher(settings) as publisher:
        for event in events:
            publisher.publish(event)

    with (
        ApiProcess(settings, log_dir=tmp_path) as api,
        ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as worker,
    ):
        calls = {c: model.campaign_totals(VDN, c)["totalCalledCount"] for c in ("C1", "C2")}

        def counted() -> bool:
            url = f"{api.url}{statistics_path(VDN)}"
            detail = httpx.get(url, timeout=5, headers=JSON_HEADERS).json()["countDetail"]
            return {c["campaignId"]: c["totalCalledCount"] for c in detail} == calls

        assert wait_for(counted, 90), f"the worker did not count in time:\n{worker.log()}"

        def get(path: str, **params: str) -> dict[str, Any]:
            url = api.url + path.format(vdn_id=VDN)
            response = httpx.get(url, params=params, timeout=10, headers=JSON_HEADERS)
            assert response.status_code == 200, response.text
            data: dict[str, Any] = response.json()["data"]
            return data

        def read_within_one_minute() -> tuple[dict[str, Any], ...] | None:
            """Pacing, both abandon rates, pacing: when both pacings name the same minute,
            every read between them was made in it."""
            first = get(PACING_PATH)
            live, every = get(ABANDON_RATE_PATH), get(ABANDON_RATE_PATH, basis="all")
            last = get(PACING_PATH)
            same = moment_ms(first["now"]) // MINUTE_MS == moment_ms(last["now"]) // MINUTE_MS
            return (first, live, every) if same else None

        reads = wait_for(read_within_one_minute, 30)
        assert reads, "no read of the four fell within one minute"
    pacing, live, every = reads
    read_ms = moment_ms(pacing["now"])  # to the second; the read's own milliseconds follow
    expected = scopes(model, Now.at(read_ms, ZONE))
    limit = AbandonLimit(settings.abandon_limit_of(VDN), settings.abandon_warning_fraction)

    bases: list[tuple[Basis, dict[str, Any]]] = [("live", live), ("all", every)]
    for basis, data in bases:
        found = answered(data)
        assert set(found) == set(expected), basis
        for scope, counts in expected.items():
            rates = abandon_rates(counts, basis, limit)
            assert {
                name: (
                    window["abandoned"],
                    window["denominator"],
                    window["ratePercent"],
                    window["status"],
                )
                for name, window in found[scope].items()
                if name in rates
            } == {
                name: (rate.abandoned, rate.denominator, rate.rate_percent, rate.status)
                for name, rate in rates.items()
            }, (basis, scope)

    found = answered(pacing)
    assert set(found) == set(expected)
    for scope, counts in expected.items():
        paced = pace(counts, read_ms, settings.stall_minutes)
        answer = found[scope]
        assert (
            answer["totalRecords"],
            answer["finishedRecords"],
            answer["remainingRecords"],
            answer["percentComplete"],
            answer["state"],
            answer["etaReason"],
            answer["attemptsPerFinishedRecord"],
            answer["connectRate"],
        ) == (
            paced.total_records,
            paced.finished_records,
            paced.remaining_records,
            paced.percent_complete,
            paced.state,
            paced.eta_reason,
            paced.attempts_per_finished_record,
            {"today": paced.connect_rate_today, "life": paced.connect_rate_life},
        ), scope
        assert answer["callsPerMinute"] == {
            f"last{size}": rate for size, rate in paced.calls_per_minute.items()
        }, scope
        assert answer["finishedPerMinute"] == {
            f"last{size}": rate for size, rate in paced.finished_per_minute.items()
        }, scope
        last = counts.last_call_minute
        assert answer["lastCallAt"] == (None if last is None else iso(last * 60)), scope
        if paced.eta is None:
            assert answer["eta"] is None, scope
        else:
            # Rounded up to the second from the read's own milliseconds, which "now" leaves
            # out: the ETA of the read's second, or of the next.
            latest = pace(counts, read_ms + 999, settings.stall_minutes).eta
            assert latest is not None
            earliest_ms = moment_ms(answer["eta"]["earliest"])
            latest_ms = moment_ms(answer["eta"]["latest"])
            assert paced.eta[0] * 1000 <= earliest_ms <= latest[0] * 1000, scope
            assert paced.eta[1] * 1000 <= latest_ms <= latest[1] * 1000, scope
    # What the scenario is for: campaigns dialling, calls in the pace windows, abandoned calls.
    assert found["C1", None]["state"] == found["C2", None]["state"] == "dialling"
    assert expected["", None].windows["m5"].calls > 0
    assert live["total"]["rolling30d"]["abandoned"] > 0
