"""Handwritten unit tests of the reference model; every expected number is computed by hand.

The model is the oracle of the engine's tests and the prediction of ``simulate --expect``
(isales_stats/core/reference_model.py), so it is checked here on its own, by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from isales_stats.core.reference_model import (
    COUNTER_KEYS,
    GMT8,
    ReferenceModel,
    occurred_day,
    reference_statistics,
)
from isales_stats.core.windows import Now

D27, D28, D29 = date(2026, 11, 27), date(2026, 11, 28), date(2026, 11, 29)
VDN = 7


def added(data: str, at: str | int, batch: str | None = None, **kw: Any) -> dict[str, Any]:
    return _event("data.added", data, at, batch, **kw)


def removed(data: str, at: str | int, batch: str | None = None, **kw: Any) -> dict[str, Any]:
    return _event("data.removed", data, at, batch, **kw)


def call(
    call_id: str,
    data: str,
    at: str | int,
    batch: str | None = None,
    *,
    status: int = 6,
    final: bool = False,
    **kw: Any,
) -> dict[str, Any]:
    extra: dict[str, Any] = {"callId": call_id, "callStatus": status, "final": final}
    if status == 5:
        extra["failCode"] = "486"
    return _event("call.result", data, at, batch, **extra, **kw)


def _event(
    kind: str,
    data: str,
    at: str | int,
    batch: str | None,
    vdn: int = VDN,
    campaign: str = "C1",
    **extra: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventType": kind,
        "vdnId": vdn,
        "campaignId": campaign,
        "dataId": data,
        "occurredAt": at,
        **extra,
    }
    if batch is not None:  # batchId absent, as most producers send it
        event["batchId"] = batch
    return event


def test_occurred_day_parses_offsets_and_epoch_millis() -> None:
    assert occurred_day("2026-11-28T23:59:59.999+08:00", GMT8) == D28
    # 16:00Z is exactly midnight in GMT+08:00.
    assert occurred_day("2026-11-28T16:00:00Z", GMT8) == D29
    assert occurred_day("2026-11-28T15:59:59.999Z", GMT8) == D28
    # 1795881600000 ms = 20786 days * 86400000 + 16 h = 2026-11-28T16:00:00Z.
    assert occurred_day(1795881600000, GMT8) == D29
    assert occurred_day(1795881599999, GMT8) == D28
    assert occurred_day(1795881600000, UTC) == D28
    with pytest.raises(ValueError, match="explicit offset"):
        occurred_day("2026-11-28T10:00:00", GMT8)  # no offset


def test_midnight_crossing_in_gmt8() -> None:
    result = reference_statistics(
        [
            added("d1", "2026-11-28T23:59:59.999+08:00"),
            call("k1", "d1", "2026-11-28T23:59:59.999+08:00", final=False),
            call("k2", "d1", "2026-11-28T16:00:00.000Z", final=True),  # 00:00 on the 29th
        ]
    )
    assert result.daily(VDN, "C1", D28) == {
        "dailyCalledCount": 1,
        "dailyCallSucc": 1,
        "dailyFinishCount": 0,
        "dailyCount": 1,
    }
    assert result.daily(VDN, "C1", D29) == {
        "dailyCalledCount": 1,
        "dailyCallSucc": 1,
        "dailyFinishCount": 1,
        "dailyCount": 1,
    }


def test_time_zone_override_per_vdn() -> None:
    events = [
        added("d1", "2026-11-28T17:00:00Z", vdn=1),  # 01:00 on the 29th in GMT+08:00
        added("d1", "2026-11-28T17:00:00Z", vdn=2),  # still the 28th in UTC
    ]
    result = reference_statistics(events, vdn_zones={2: UTC})
    assert result.daily(1, "C1", D29)["dailyCount"] == 1
    assert result.daily(1, "C1", D28)["dailyCount"] == 0
    assert result.daily(2, "C1", D28)["dailyCount"] == 1
    assert result.daily(2, "C1", D29)["dailyCount"] == 0
    # default_zone applies to every VDN not overridden.
    utc = reference_statistics(events, default_zone=UTC)
    assert utc.daily(1, "C1", D28)["dailyCount"] == 1


def test_duplicates_count_once_and_are_not_rejected() -> None:
    at = "2026-11-28T10:00:00+08:00"
    result = reference_statistics(
        [
            added("d1", at),
            added("d1", "2026-11-29T10:00:00+08:00"),  # same identity, later day: ignored
            call("k1", "d1", at, final=True),
            call("k1", "d1", at, final=True),
            call("k1", "d2", at, status=5),  # call identity is the callId alone
            removed("d1", at),
            removed("d1", at),
        ]
    )
    assert len(result.accepted) == 3
    assert result.rejected == []
    assert result.campaign_totals(VDN, "C1") == {
        "unCallCount": 0,
        "totalCalledCount": 1,
        "totalCallSucc": 1,
        "totalFinishCount": 1,
        "totalCount": 0,
    }
    assert result.daily(VDN, "C1", D29)["dailyCount"] == 0


def test_removal_before_add_still_removes() -> None:
    result = reference_statistics(
        [
            removed("d1", "2026-11-28T09:00:00+08:00"),
            added("d1", "2026-11-28T10:00:00+08:00"),
            added("d2", "2026-11-28T10:00:00+08:00"),
        ]
    )
    totals = result.campaign_totals(VDN, "C1")
    assert totals["totalCount"] == 1  # only d2
    assert totals["unCallCount"] == 1
    # Removal does not change daily counts: both adds count on the 28th.
    assert result.daily(VDN, "C1", D28)["dailyCount"] == 2


def test_record_finished_on_two_days() -> None:
    result = reference_statistics(
        [
            added("d1", "2026-11-27T08:00:00+08:00"),
            call("k1", "d1", "2026-11-27T09:00:00+08:00", final=True),
            call("k2", "d1", "2026-11-28T09:00:00+08:00", status=5, final=True),
        ]
    )
    totals = result.campaign_totals(VDN, "C1")
    assert totals["totalFinishCount"] == 1  # one record, however often finished
    assert totals["totalCalledCount"] == 2
    assert totals["totalCallSucc"] == 1
    assert result.daily(VDN, "C1", D27)["dailyFinishCount"] == 1
    assert result.daily(VDN, "C1", D28)["dailyFinishCount"] == 1
    assert result.daily(VDN, "C1", D28)["dailyCallSucc"] == 0
    assert result.counters(VDN, "C1", D28)["finishCount"] == 1


def test_batch_conflict_is_rejected_in_order() -> None:
    at = "2026-11-28T10:00:00+08:00"
    conflicting_call = call("k1", "d1", at, "B2")
    no_batch_removal = removed("d1", at)  # None differs from "B1"
    batched_add = added("d2", at, "B1")  # d2's batch is None (absent) from its first event
    result = reference_statistics(
        [
            added("d1", at, "B1"),
            conflicting_call,
            no_batch_removal,
            call("k2", "d2", at),
            batched_add,
            {**call("k1", "d1", at), "batchId": "B1"},  # k1 was rejected, so not a duplicate
        ]
    )
    assert result.rejected == [conflicting_call, no_batch_removal, batched_add]
    assert result.campaign_totals(VDN, "C1", "B1") == {
        "unCallCount": 0,
        "totalCalledCount": 1,
        "totalCallSucc": 1,
        "totalFinishCount": 0,
        "totalCount": 1,
    }
    assert result.batches(VDN, "C1") == ["B1"]


def test_add_says_what_became_of_each_event() -> None:
    at = "2026-11-28T10:00:00+08:00"
    model = ReferenceModel(lambda vdn: GMT8)
    outcomes = [
        model.add(event)
        for event in (
            added("d1", at, "B1"),
            added("d1", at, "B2"),  # same identity: a duplicate first, whatever its batch
            call("k1", "d1", at, "B2"),  # d1 is in B1
            call("k1", "d1", at, "B1"),  # k1 was a conflict, so not a duplicate
            call("k1", "d1", at, "B1"),
            removed("d1", at, "B1"),
        )
    ]
    assert outcomes == ["counted", "duplicate", "conflict", "counted", "duplicate", "counted"]
    assert len(model.accepted) == 3
    assert len(model.rejected) == 1


def test_duplicate_with_other_batch_is_ignored_not_rejected() -> None:
    at = "2026-11-28T10:00:00+08:00"
    result = reference_statistics([added("d1", at, "B1"), added("d1", at, "B2")])
    assert result.rejected == []
    assert len(result.accepted) == 1
    assert result.batches(VDN, "C1") == ["B1"]


def test_unknown_vdn_and_empty_day_give_nothing_or_zeros() -> None:
    result = reference_statistics([added("d1", "2026-11-28T10:00:00+08:00")])
    assert result.count_detail(99, D28) == []
    assert set(result.daily(VDN, "C1", D27).values()) == {0}
    assert result.counters(VDN, "C1", D27) == {
        "unCallCount": 1,
        "calledCount": 0,
        "finishCount": 0,
        "totalCalledCount": 0,
        "totalCallSucc": 0,
        "totalFinishCount": 0,
        "totalCount": 1,
        "dailyCalledCount": 0,
        "dailyCallSucc": 0,
        "dailyFinishCount": 0,
        "dailyCount": 0,
    }


def _scenario() -> ReferenceModel:
    return reference_statistics(
        [
            added("d1", "2026-11-28T10:00:00+08:00", "B2", campaign="C2"),
            added("d5", "2026-11-26T09:00:00+08:00"),
            added("d1", "2026-11-27T09:00:00+08:00", "B2"),
            added("d2", "2026-11-28T09:00:00+08:00", "B1"),
            added("d3", "2026-11-28T09:30:00+08:00"),
            added("d4", "2026-11-28T09:40:00+08:00", "B1"),
            call("k1", "d1", "2026-11-27T10:00:00+08:00", "B2", final=True),
            call("k2", "d2", "2026-11-28T10:00:00+08:00", "B1", status=5),
            call("k3", "d2", "2026-11-28T11:00:00+08:00", "B1", final=True),
            call("k4", "d3", "2026-11-28T12:00:00+08:00"),
            removed("d4", "2026-11-28T13:00:00+08:00", "B1"),
            added("d9", "2026-11-28T10:00:00+08:00", vdn=8),  # other VDN: not in the view
        ]
    )


def _counters(*values: int) -> dict[str, int]:
    """The eleven counters from values in the API body's documentation order."""
    return dict(zip(COUNTER_KEYS, values, strict=True))


def test_count_detail_full_body() -> None:
    # C1: records d1..d5, d4 removed, d5 never called; calls k1..k4 (k2 failed);
    # finished d1 (27th) and d2 (28th); on the 28th: k2, k3, k4 and records d2, d3, d4.
    # B1: d2, d4 (removed); calls k2, k3. B2: d1; call k1 on the 27th. d3, d5: no batch.
    expected = [
        {
            "campaignId": "C1",
            **_counters(1, 3, 2, 4, 3, 2, 4, 3, 2, 1, 3),
            "batchDetail": [
                {"batchId": "B1", **_counters(0, 2, 1, 2, 1, 1, 1, 2, 1, 1, 2)},
                {"batchId": "B2", **_counters(0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0)},
            ],
        },
        {
            "campaignId": "C2",
            **_counters(1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1),
            "batchDetail": [{"batchId": "B2", **_counters(1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1)}],
        },
    ]
    assert _scenario().count_detail(VDN, D28) == expected


def test_count_detail_on_another_day() -> None:
    # On the 27th only d1's add and k1 (connected, final) happened.
    detail = _scenario().count_detail(VDN, D27)
    assert detail[0]["campaignId"] == "C1"
    assert {k: detail[0][k] for k in ("calledCount", "finishCount", "dailyCount")} == {
        "calledCount": 1,
        "finishCount": 2,
        "dailyCount": 1,
    }
    assert detail[0]["batchDetail"][1] == {
        "batchId": "B2",
        **_counters(0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    }


def test_windows_of_a_scope_by_hand() -> None:
    """New York's clocks go back at 02:00 EDT on 2026-11-01: 01:30 EDT (05:30 UTC) and 01:30
    EST (06:30 UTC) are two hours. A record finishes at its first final call as accepted, here
    the later one; an abandoned call is a failed one with an abandon failCode."""
    new_york = ZoneInfo("America/New_York")
    model = ReferenceModel(lambda vdn: new_york)
    first, second = "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"
    model.add(call("x2", "d1", second, final=True))
    model.add(call("x1", "d1", first, final=True))
    model.add({**call("x3", "d2", second, status=5), "failCode": "00701"})
    minute = int(datetime(2026, 11, 1, 6, 30, tzinfo=UTC).timestamp()) // 60
    hour, day = minute // 60, (date(2026, 11, 1) - date(1970, 1, 1)).days
    now = Now(minute + 3, hour, day)
    assert model.window_buckets(VDN, "C1", now) == {
        ("minute", minute): (2, 1, 1, 1),  # 05:30 UTC is in no minute window: not kept
        ("hour", hour): (2, 1, 1, 1),
        ("hour", hour - 1): (1, 1, 0, 0),
        ("day", day): (3, 2, 1, 1),
    }
    assert model.window_sums(VDN, "C1", now) == {
        "m5": (2, 1, 1, 1),
        "m15": (2, 1, 1, 1),
        "m60": (2, 1, 1, 1),
        "h24": (3, 2, 1, 1),
        "d30": (3, 2, 1, 1),
    }
    assert model.window_life(VDN, "C1") == (3, 2, 1, 1)
    assert model.last_call_minute(VDN, "C1") == minute
    # An hour later only the hour and day buckets are left in a window.
    later = Now(minute + 63, hour + 1, day)
    assert set(model.window_buckets(VDN, "C1", later)) == {
        ("hour", hour),
        ("hour", hour - 1),
        ("day", day),
    }
    assert model.window_sums(VDN, "C1", later)["m60"] == (0, 0, 0, 0)
