"""Hypothesis strategies: event streams shaped like a dialer's, small enough to shrink well."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from tests.support.clock import GMT8
from tests.support.events import ADDED, CALL, REMOVED, call_event

# Two VDNs, the second with its own zone: a day boundary that is not GMT+08:00's midnight.
VDN_ZONES = {1: GMT8, 2: timezone(timedelta(hours=-5, minutes=-30))}
# Three days around two midnights of GMT+08:00.
FIRST_MOMENT = datetime(2026, 11, 26, 20, 0, tzinfo=GMT8)
SPAN_MS = 3 * 24 * 3600 * 1000


def zone_of(vdn_id: int) -> Any:
    return VDN_ZONES.get(vdn_id, GMT8)


@st.composite
def occurred_at(draw: st.DrawFn) -> str | int:
    """Epoch ms or ISO-8601 with an offset; near midnights far more often than elsewhere."""
    midnight_ms = int(datetime(2026, 11, 27, tzinfo=GMT8).timestamp() * 1000)
    near_midnight = (
        midnight_ms + draw(st.sampled_from([0, 1, 86_400_000])) - draw(st.integers(0, 2))
    )
    anywhere = int(FIRST_MOMENT.timestamp() * 1000) + draw(st.integers(0, SPAN_MS))
    epoch_ms = draw(st.sampled_from([near_midnight, anywhere]))
    if draw(st.booleans()):
        return epoch_ms
    offset = draw(st.sampled_from([GMT8, UTC, timezone(timedelta(hours=-3))]))
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC).astimezone(offset)
    return moment.isoformat(timespec="milliseconds")


@st.composite
def records(draw: st.DrawFn) -> list[dict[str, Any]]:
    """The distinct events of a few records: each record keeps one batch (no contradictions)."""
    events: list[dict[str, Any]] = []
    call_number = 0
    for record in range(draw(st.integers(1, 8))):
        vdn_id = draw(st.sampled_from([1, 2]))
        campaign_id = draw(st.sampled_from(["C1", "C2", "C3"]))
        common: dict[str, Any] = {
            "vdnId": vdn_id,
            "campaignId": campaign_id,
            "dataId": f"d{record}",
        }
        # None: no batchId at all, as most producers send a record without a batch.
        common["batchId"] = draw(st.sampled_from([None, "B1", "B2"]))
        if draw(st.booleans()):
            events.append(call_event(ADDED, **common, occurredAt=draw(occurred_at())))
        for _ in range(draw(st.integers(0, 3))):
            call_number += 1
            status = draw(st.sampled_from([5, 6]))
            events.append(
                call_event(
                    CALL,
                    **common,
                    callId=f"call{call_number}",
                    callStatus=status,
                    final=draw(st.booleans()),
                    occurredAt=draw(occurred_at()),
                    # None: a failed call that gave no failCode (counted under ""); 00701 and
                    # 01046 abandoned calls (counted per hour too)
                    failCode=draw(st.sampled_from([None, "F1", "00701", "01046"]))
                    if status == 5
                    else None,
                )
            )
        if draw(st.integers(0, 4)) == 0:
            events.append(call_event(REMOVED, **common, occurredAt=draw(occurred_at())))
        if not events or events[-1]["dataId"] != f"d{record}":
            events.append(call_event(ADDED, **common, occurredAt=draw(occurred_at())))
    return events


@st.composite
def delivered(draw: st.DrawFn, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same events as a broker might deliver them: shuffled, some several times."""
    copies = [event for event in events for _ in range(draw(st.integers(1, 3)))]
    return draw(st.permutations(copies))


@st.composite
def contradicting(draw: st.DrawFn, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events with some batch contradictions and same-identity events with other payloads."""
    result = list(events)
    for _ in range(draw(st.integers(1, 4))):
        original = dict(draw(st.sampled_from(events)))
        change = draw(st.sampled_from(["batch", "drop-batch", "payload"]))
        if change == "batch":
            original["batchId"] = draw(st.sampled_from(["B1", "B2", "B9"]))
        elif change == "drop-batch":
            original.pop("batchId", None)
        elif original["eventType"] == CALL:
            original["callStatus"] = 11 - original["callStatus"]
            original["final"] = not original["final"]
        result.insert(draw(st.integers(0, len(result))), original)
    return result
