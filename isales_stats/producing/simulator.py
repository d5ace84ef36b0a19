"""Realistic outbound-campaign traffic: what ``isales-stats simulate`` publishes.

A campaign's life as the dialer sees it: batches of records are imported (``data.added``), the
dialer works through each batch in order, calls connect at a given rate, failed calls are
retried later until they connect, fail with a code that is never retried, or run out of
attempts (that call is then ``final``), and a few records are taken out of the campaign
(``data.removed``), which stops their dialling. iSales pushes some results twice. Events come
out in the order of their simulated time, so a campaign's records are imported before they are
called.

The timeline decides the stamps (``occurredAt``):

* ``live``: each event is stamped when it is produced; the simulated clock only orders them;
* ``day``: the simulated clock runs over the 24 hours before now;
* ``midnight``: over the two hours around the last midnight in the VDN's time zone (cut at
  now), so the daily counters of two days both move.

Whatever the simulated clock says, nothing is stamped after now; what would happen later is
not produced (some records stay uncalled, some retries pending), as on a real day.
Deterministic: the same seed and options give the same records, calls and outcomes, and with
the same ``now`` the same stamps too.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from itertools import count
from typing import Any, Literal

from isales_stats.producing.callbacks import DEFAULT_FINAL_FAIL_CODES, is_final

Timeline = Literal["live", "day", "midnight"]
TIMELINES: tuple[Timeline, ...] = ("live", "day", "midnight")

HOUR_MS = 3_600_000
CONNECTED_CODE = "00000"
# Why failed calls fail, with weights: the iSales failCodes of unanswered outbound calls.
FAILURES = (
    ("00603", 30),  # no answer
    ("00537", 20),  # busy
    ("00601", 12),  # hung up before answer
    ("00604", 10),  # rejected
    ("00548", 10),  # powered off
    ("01040", 8),  # ring timeout
    ("00549", 5),  # out of area
    ("00538", 5),  # empty or wrong number: never retried
)
_FAIL_CODES = [code for code, _ in FAILURES]
_FAIL_WEIGHTS = [weight for _, weight in FAILURES]


@dataclass(frozen=True)
class TrafficOptions:
    """The shape of the simulated traffic (the ``simulate`` command's options)."""

    vdn_id: int = 1
    campaigns: int = 3
    batches: int = 2
    records: int = 200  # per batch
    first_campaign: int = 1001
    connect_rate: float = 0.45
    max_attempts: int = 3
    remove_rate: float = 0.03
    duplicate_rate: float = 0.01
    timeline: Timeline = "live"
    seed: int = 0
    final_fail_codes: frozenset[str] = frozenset(DEFAULT_FINAL_FAIL_CODES)

    def __post_init__(self) -> None:
        for name in ("campaigns", "batches", "records", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("connect_rate", "remove_rate", "duplicate_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.timeline not in TIMELINES:
            raise ValueError(f"timeline must be one of {', '.join(TIMELINES)}")

    @property
    def record_count(self) -> int:
        return self.campaigns * self.batches * self.records


def simulation_window(timeline: Timeline, now_ms: int, zone: tzinfo) -> tuple[int, int]:
    """The simulated clock's span, epoch ms: (start, end), end never after ``now_ms``."""
    if timeline == "day":
        return now_ms - 24 * HOUR_MS, now_ms
    if timeline == "midnight":
        local = datetime.fromtimestamp(now_ms / 1000, zone)
        midnight = datetime.combine(local.date(), datetime.min.time(), zone)
        midnight_ms = int(midnight.timestamp()) * 1000
        return midnight_ms - HOUR_MS, min(midnight_ms + HOUR_MS, now_ms)
    return now_ms, now_ms + HOUR_MS  # live: only the order matters


def simulate_traffic(
    options: TrafficOptions,
    now_ms: int,
    zone: tzinfo,
    clock_ms: Callable[[], int] | None = None,
) -> Iterator[dict[str, Any]]:
    """The events of the simulated traffic, in contract form, in order of simulated time.

    ``clock_ms`` stamps ``live`` events as they are taken (default: the system clock).
    """
    rng = random.Random(options.seed)  # noqa: S311 - seeded traffic, replayable; no secrets
    start, end = simulation_window(options.timeline, now_ms, zone)
    span = max(end - start, 1)
    live = options.timeline == "live"
    stamp = clock_ms or (lambda: int(time.time() * 1000))
    sequence = count()
    # Entries: (simulated ms, tie-break, event) or (ms, tie-break, batch cursor: next record).
    queue: list[tuple[int, int, dict[str, Any] | _Batch]] = []
    calls = count(1)
    tag = f"s{options.seed}"
    for campaign_index in range(options.campaigns):
        campaign_id = str(options.first_campaign + campaign_index)
        for batch_index in range(options.batches):
            batch = _Batch(
                campaign_id=campaign_id,
                batch_id=f"batch-{batch_index + 1}",
                data_prefix=f"{tag}-{campaign_id}-{batch_index + 1}",
                imported_at=start + int(rng.uniform(0, 0.6) * span),
                records=options.records,
                pace=rng.uniform(0.3, 0.9),
            )
            heapq.heappush(queue, (batch.imported_at, next(sequence), batch))

    while queue:
        at, _, item = heapq.heappop(queue)
        if at > end:
            return  # the queue is ordered: everything left would happen after now
        if isinstance(item, _Batch):
            for moment, event in _record_events(item, options, rng, span, tag, calls):
                if not live:
                    event.setdefault("occurredAt", moment)  # a re-push keeps the first stamp
                heapq.heappush(queue, (moment, next(sequence), event))
            item.next_record += 1
            if item.next_record < item.records:
                heapq.heappush(queue, (item.import_time(span), next(sequence), item))
            continue
        if "occurredAt" not in item:  # live: stamped when taken; a re-push keeps the stamp
            item["occurredAt"] = stamp()
        yield dict(item)


@dataclass
class _Batch:
    campaign_id: str
    batch_id: str
    data_prefix: str
    imported_at: int
    records: int
    pace: float  # the share of the window the dialer needs to call every record once
    next_record: int = 0

    def import_time(self, span: int) -> int:
        # A batch is imported in one go: its records arrive within 2 % of the window.
        return self.imported_at + int(0.02 * span * self.next_record / self.records)


def _record_events(
    batch: _Batch,
    options: TrafficOptions,
    rng: random.Random,
    span: int,
    tag: str,
    calls: Iterator[int],
) -> list[tuple[int, dict[str, Any]]]:
    """The whole life of the batch's next record: import, attempts, maybe removal, re-pushes."""
    number = batch.next_record
    record = {
        "vdnId": options.vdn_id,
        "campaignId": batch.campaign_id,
        "batchId": batch.batch_id,
        "dataId": f"{batch.data_prefix}-{number + 1}",
    }
    imported = batch.import_time(span)
    events: list[tuple[int, dict[str, Any]]] = [(imported, {"eventType": "data.added", **record})]
    removed_at = None
    if rng.random() < options.remove_rate:
        removed_at = imported + int(rng.uniform(0.01, 0.6) * span)
        events.append((removed_at, {"eventType": "data.removed", **record}))
    # The dialer works through a batch in order, starting as soon as the import does (dialling
    # is slower than importing: a record is dialled after it arrived); late batches are not
    # finished by the end of the window.
    dialled = batch.imported_at + int((0.002 + batch.pace * number / batch.records) * span)
    dialled += int(rng.uniform(0, 0.01) * span)
    for attempt in range(1, options.max_attempts + 1):
        if removed_at is not None and dialled >= removed_at:
            break  # a removed record is not dialled any more
        answered = dialled + rng.randint(15_000, 180_000)
        connected = rng.random() < options.connect_rate
        fail_code = CONNECTED_CODE if connected else rng.choices(_FAIL_CODES, _FAIL_WEIGHTS)[0]
        final = (
            is_final(connected, fail_code, options.final_fail_codes)
            or attempt == options.max_attempts
        )
        result = {
            "eventType": "call.result",
            **record,
            "callId": f"{tag}-{batch.campaign_id}-{next(calls)}",
            "callStatus": 6 if connected else 5,
            "failCode": fail_code,
            "final": final,
        }
        events.append((answered, result))
        if rng.random() < options.duplicate_rate:
            # iSales pushes a result again when the receiver did not answer in time: the same
            # body (the same dict, so it carries the first push's stamp).
            events.append((answered + rng.randint(1_000, 600_000), result))
        if final:
            break
        dialled = answered + int(rng.uniform(0.05, 0.12) * span)
    return events
