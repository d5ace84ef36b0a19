"""Event streams shaped like a dialer's, deterministic by seed, for tests and benchmarks.

``campaign_stream``: large and realistic. Records are imported in batches, dialled up to three
times (a connected call is final, the third failed attempt too), some are removed; timestamps
spread over the last hours and yesterday (or the last hour), in GMT+08:00. Upstream duplicates
are exact copies placed later in the stream. ``campaign_events``: a few records per batch of
one campaign, all at one moment, for the API tests.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from tests.support.events import ADDED, CALL, REMOVED, call_event


def campaign_stream(
    events: int,
    *,
    vdn_id: int = 1,
    campaigns: int = 6,
    batches: int = 3,
    duplicate_rate: float = 0.02,
    seed: int = 1,
    now: datetime | None = None,
    spread_hours: float = 30,
) -> list[dict[str, Any]]:
    """About ``events`` events (exactly that many), in a dialer-like order.

    Each record's events start at a random moment of the last ``spread_hours``: 30 (today and
    some of yesterday, so that the daily counters see two days, and any batch holds events of
    every hour: the worst case for the hour counters), or 1 for the traffic of a live dialer,
    whose results arrive within the hour they happen.
    """
    rng = random.Random(seed)
    now_ms = int((now or datetime.now(UTC)).timestamp() * 1000)
    stream: list[dict[str, Any]] = []
    record = 0
    while len(stream) < events:
        record += 1
        campaign = f"camp-{rng.randrange(campaigns):03d}"
        common: dict[str, Any] = {
            "vdnId": vdn_id,
            "campaignId": campaign,
            "dataId": f"rec-{record}",
        }
        if rng.random() < 0.9:  # a few records are imported without a batch
            common["batchId"] = f"batch-{rng.randrange(batches)}"
        # Mostly today, some yesterday: the daily counters see two days.
        moment = now_ms - rng.randint(0, int(spread_hours * 3600 * 1000))
        stream.append(call_event(ADDED, **common, occurredAt=moment))
        for attempt in range(rng.choice((0, 1, 1, 2, 3))):
            moment = min(moment + rng.randint(1_000, 3_600_000), now_ms)
            connected = rng.random() < 0.4
            stream.append(
                call_event(
                    CALL,
                    **common,
                    callId=f"call-{record}-{attempt}",
                    callStatus=6 if connected else 5,
                    failCode="00000" if connected else rng.choice(("00603", "00537")),
                    final=connected or attempt == 2,
                    occurredAt=moment,
                )
            )
            if connected:
                break
        if rng.random() < 0.03:
            stream.append(call_event(REMOVED, **common, occurredAt=now_ms))
    del stream[events:]
    for _ in range(int(events * duplicate_rate)):
        index = rng.randrange(len(stream) - 1)
        stream.insert(rng.randrange(index + 1, len(stream)), stream[index])
    return stream[:events]


def campaign_events(
    vdn_id: int,
    campaign_id: str,
    batch_ids: Sequence[str | None],
    records_per_batch: int,
    *,
    moment_ms: int,
    seed: int = 1,
) -> list[dict[str, Any]]:
    """Records added to each batch, most dialled once or twice, some connected (JSON events).

    A batch of ``None`` adds records without a batchId: they count for the campaign only.
    """
    rng = random.Random(f"{seed}:{vdn_id}:{campaign_id}")
    events: list[dict[str, Any]] = []
    for batch_id in batch_ids:
        for record in range(records_per_batch):
            common: dict[str, Any] = {
                "vdnId": vdn_id,
                "campaignId": campaign_id,
                "dataId": f"{batch_id}-{record}",
                "occurredAt": moment_ms,
                "batchId": batch_id,
            }
            events.append(call_event(ADDED, **common))
            for attempt in range(rng.choice([0, 1, 1, 2])):
                connected = rng.random() < 0.5
                events.append(
                    call_event(
                        CALL,
                        **common,
                        callId=f"{campaign_id}-{batch_id}-{record}-{attempt}",
                        callStatus=6 if connected else 5,
                        final=connected,
                    )
                )
                if connected:
                    break
    return events


def encoded(stream: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs as the SDK would publish them."""
    return [
        (f"{event['vdnId']}:{event['campaignId']}".encode(), orjson.dumps(event))
        for event in stream
    ]
