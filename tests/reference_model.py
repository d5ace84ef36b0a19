"""Reference model (test oracle) of the isales-stats counting rules.

Deliberately naive and independent of the engine (imports nothing from ``engine``, ``api``
or ``isales_stats``), so that property-based tests can compare the engine against it.

Two steps:

1. Acceptance, the only order-dependent part. Events are walked in the given order:

   * an event whose identity was already accepted is a duplicate and is ignored (neither
     accepted nor rejected), even if its batchId differs: the duplicate check runs first.
     Identities: ``data.added`` -> (vdnId, campaignId, dataId), ``data.removed`` -> (vdnId,
     campaignId, dataId), ``call.result`` -> (vdnId, campaignId, callId);
   * otherwise the event is rejected (dead-lettered) if its batchId (None when absent)
     differs from the batch of its record (vdnId, campaignId, dataId), which is the batchId
     of the first accepted event of that record;
   * otherwise it is accepted.

2. Counting. Every counter is a set/len expression over the final accepted events of one
   scope: a campaign (vdnId, campaignId), or one batch of it. Records without a batch belong
   to their campaign but to no batch. Days are dates of occurredAt in the VDN's time zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import Any

Event = Mapping[str, Any]

ADDED = "data.added"
CALL = "call.result"
REMOVED = "data.removed"
CONNECTED = 6  # callStatus of a successful call; 5 (failed) is any other value

GMT8 = timezone(timedelta(hours=8))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The 11 counters of the API body, in documentation order.
COUNTER_KEYS = (
    "unCallCount",
    "calledCount",
    "finishCount",
    "totalCalledCount",
    "totalCallSucc",
    "totalFinishCount",
    "totalCount",
    "dailyCalledCount",
    "dailyCallSucc",
    "dailyFinishCount",
    "dailyCount",
)


def occurred_day(occurred_at: str | int, zone: tzinfo) -> date:
    """Calendar date of ``occurredAt`` (ISO-8601 with offset, or epoch millis) in ``zone``."""
    if isinstance(occurred_at, bool):  # bool is an int subclass, but never a timestamp
        raise TypeError(f"occurredAt must be str or int, got {occurred_at!r}")
    if isinstance(occurred_at, int):
        # Integer timedelta arithmetic: no float rounding for instants just before midnight.
        instant = _EPOCH + timedelta(milliseconds=occurred_at)
    elif isinstance(occurred_at, str):
        instant = datetime.fromisoformat(occurred_at)
        if instant.tzinfo is None:  # a naive local time has no well-defined day
            raise ValueError(f"occurredAt needs an explicit offset: {occurred_at!r}")
    else:
        raise TypeError(f"occurredAt must be str or int, got {occurred_at!r}")
    return instant.astimezone(zone).date()


def _record(event: Event) -> tuple[Any, Any, Any]:
    return (event["vdnId"], event["campaignId"], event["dataId"])


def _identity(event: Event) -> tuple[Any, ...]:
    # The kind tag comes first so identities of different kinds can never collide.
    kind = event["eventType"]
    if kind == CALL:
        return (kind, event["vdnId"], event["campaignId"], event["callId"])
    if kind in (ADDED, REMOVED):
        return (kind, *_record(event))
    raise ValueError(f"unknown eventType {kind!r}")


def _accept(events: Iterable[Event]) -> tuple[list[Event], list[Event]]:
    """Step 1: split events into (accepted, rejected); duplicates end up in neither."""
    seen: set[tuple[Any, ...]] = set()
    batch_of: dict[tuple[Any, Any, Any], str | None] = {}
    accepted: list[Event] = []
    rejected: list[Event] = []
    for event in events:
        identity = _identity(event)
        if identity in seen:
            continue
        batch = event.get("batchId")
        # setdefault: the first event of a record that gets here is accepted and fixes the batch.
        if batch_of.setdefault(_record(event), batch) != batch:
            rejected.append(event)
            continue
        seen.add(identity)
        accepted.append(event)
    return accepted, rejected


@dataclass(frozen=True)
class ModelResult:
    """Accepted/rejected events plus the zones needed to compute any counter on demand."""

    accepted: list[Event]
    rejected: list[Event]
    default_zone: tzinfo
    vdn_zones: Mapping[int, tzinfo]

    def zone_of(self, vdn_id: int) -> tzinfo:
        return self.vdn_zones.get(vdn_id, self.default_zone)

    def _events(self, vdn_id: int, campaign_id: str, batch_id: str | None) -> list[Event]:
        """Accepted events of a campaign, or of one batch of it when ``batch_id`` is given."""
        # Filtering events by batchId equals filtering by record batch: all accepted events
        # of a record carry the same batchId (step 1 rejects the others).
        return [
            e
            for e in self.accepted
            if e["vdnId"] == vdn_id
            and e["campaignId"] == campaign_id
            and (batch_id is None or e.get("batchId") == batch_id)
        ]

    def campaigns(self, vdn_id: int) -> list[str]:
        """Campaigns of a VDN that have at least one accepted event, sorted."""
        return sorted({e["campaignId"] for e in self.accepted if e["vdnId"] == vdn_id})

    def batches(self, vdn_id: int, campaign_id: str) -> list[str]:
        """Batches of a campaign (None, meaning no batch, excluded), sorted."""
        events = self._events(vdn_id, campaign_id, None)
        return sorted({e["batchId"] for e in events if e.get("batchId") is not None})

    def campaign_totals(
        self, vdn_id: int, campaign_id: str, batch_id: str | None = None
    ) -> dict[str, int]:
        """Day-independent counters of a campaign, or of one of its batches."""
        events = self._events(vdn_id, campaign_id, batch_id)
        records = {e["dataId"] for e in events}  # known = seen in any accepted event
        removed = {e["dataId"] for e in events if e["eventType"] == REMOVED}
        calls = [e for e in events if e["eventType"] == CALL]  # distinct by callId already
        called = {c["dataId"] for c in calls}
        return {
            "unCallCount": len(records - removed - called),
            "totalCalledCount": len(calls),
            "totalCallSucc": sum(1 for c in calls if c["callStatus"] == CONNECTED),
            # Removal does not undo a finish (nor any call count).
            "totalFinishCount": len({c["dataId"] for c in calls if c["final"] is True}),
            "totalCount": len(records - removed),
        }

    def daily(
        self, vdn_id: int, campaign_id: str, day: date, batch_id: str | None = None
    ) -> dict[str, int]:
        """Counters of one day (in the VDN's zone); zeros for a day without data."""
        zone = self.zone_of(vdn_id)
        on_day = [
            e
            for e in self._events(vdn_id, campaign_id, batch_id)
            if occurred_day(e["occurredAt"], zone) == day
        ]
        calls = [e for e in on_day if e["eventType"] == CALL]
        return {
            "dailyCalledCount": len(calls),
            "dailyCallSucc": sum(1 for c in calls if c["callStatus"] == CONNECTED),
            "dailyFinishCount": len({c["dataId"] for c in calls if c["final"] is True}),
            # Sets count each record once per day, however many events it had that day.
            "dailyCount": len({e["dataId"] for e in on_day if e["eventType"] in (ADDED, CALL)}),
        }

    def counters(
        self, vdn_id: int, campaign_id: str, today: date, batch_id: str | None = None
    ) -> dict[str, int]:
        """The 11 API counters of a campaign (or batch) as seen on ``today``."""
        totals = self.campaign_totals(vdn_id, campaign_id, batch_id)
        daily = self.daily(vdn_id, campaign_id, today, batch_id)
        merged = {
            **totals,
            **daily,
            "calledCount": daily["dailyCalledCount"],
            "finishCount": totals["totalFinishCount"],
        }
        return {key: merged[key] for key in COUNTER_KEYS}

    def count_detail(self, vdn_id: int, today: date) -> list[dict[str, Any]]:
        """Exactly the API body: campaigns by campaignId, each with batchDetail by batchId."""
        return [
            {
                "campaignId": campaign,
                **self.counters(vdn_id, campaign, today),
                "batchDetail": [
                    {"batchId": batch, **self.counters(vdn_id, campaign, today, batch)}
                    for batch in self.batches(vdn_id, campaign)
                ],
            }
            for campaign in self.campaigns(vdn_id)
        ]


def reference_statistics(
    events: Iterable[Mapping[str, Any]],
    *,
    default_zone: tzinfo = GMT8,
    vdn_zones: Mapping[int, tzinfo] = MappingProxyType({}),  # read-only: safe shared default
) -> ModelResult:
    """Run step 1 on ``events`` (in order); counters are computed lazily from the result."""
    accepted, rejected = _accept(events)
    return ModelResult(accepted, rejected, default_zone, dict(vdn_zones))
