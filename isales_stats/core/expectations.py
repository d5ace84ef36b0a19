"""What the engine will serve for a stream of events: a small, independent model of the rules.

``isales-stats simulate --expect`` feeds it every event it publishes and writes the statistics
the API should answer afterwards. It is written apart from the engine on purpose (the engine
counts in Lua, ``engine/count_events.lua``): a prediction computed by the code under test
would prove nothing. The rules, as the README states them:

* Acceptance, in the order events arrive (Kafka keeps a campaign's order). An event whose
  identity was counted before is a duplicate and changes nothing: ``data.added`` and
  ``data.removed`` are identified by their record (dataId), ``call.result`` by its callId.
  Otherwise an event whose batchId differs from its record's (the batch of the record's first
  counted event) is a conflict and is not counted. Everything else is counted.
* Counting, over the counted events of a campaign (or of one batch of it): a record is known
  once any of its events is counted; ``totalCount`` the known records not removed,
  ``unCallCount`` those also never called, ``totalCalledCount`` / ``totalCallSucc`` the calls
  and connected calls, ``totalFinishCount`` the records with a final call (a removal does not
  undo it). The daily counters do the same for the events of one day in the VDN's zone:
  ``dailyCount`` the records with an import or a call that day, ``dailyFinishCount`` those
  with a final call that day. ``calledCount`` repeats ``dailyCalledCount`` and
  ``finishCount`` repeats ``totalFinishCount``.

Not modelled, because ``simulate`` never produces them: events the worker refuses before
counting (stamped in the future beyond the clock skew) and days older than the retention.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from isales_stats.core.events import CallEvent, EventKind

COUNTER_NAMES = (
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


@dataclass
class _Record:
    batch_id: str | None
    added: bool = False
    removed: bool = False
    called: bool = False
    finished: bool = False


@dataclass(frozen=True)
class _Call:
    data_id: str
    connected: bool
    final: bool
    day: date


@dataclass
class _Campaign:
    records: dict[str, _Record] = field(default_factory=dict)
    calls: dict[str, _Call] = field(default_factory=dict)
    # day -> dataIds with an import or a call that day
    seen_on: dict[date, set[str]] = field(default_factory=dict)


class ExpectedStatistics:
    """Feed events with ``add`` in publishing order; read ``count_detail`` at any time."""

    def __init__(self, zone_of: Callable[[int], tzinfo]) -> None:
        self.zone_of = zone_of
        self._campaigns: dict[tuple[int, str], _Campaign] = {}

    def add(self, event: CallEvent) -> str:
        """Apply one event; returns ``"counted"``, ``"duplicate"`` or ``"conflict"``."""
        campaign = self._campaigns.setdefault((event.vdn_id, event.campaign_id), _Campaign())
        record = campaign.records.get(event.data_id)
        if event.kind is EventKind.CALL_RESULT:
            duplicate = event.call_id in campaign.calls
        elif event.kind is EventKind.DATA_ADDED:
            duplicate = record is not None and record.added
        else:
            duplicate = record is not None and record.removed
        if duplicate:
            return "duplicate"
        if record is None:
            record = campaign.records[event.data_id] = _Record(event.batch_id)
        elif record.batch_id != event.batch_id:
            return "conflict"

        day = datetime.fromtimestamp(event.occurred_at_ms // 1000, self.zone_of(event.vdn_id))
        if event.kind is EventKind.DATA_REMOVED:
            record.removed = True
            return "counted"
        campaign.seen_on.setdefault(day.date(), set()).add(event.data_id)
        if event.kind is EventKind.DATA_ADDED:
            record.added = True
        else:
            assert event.call_id is not None
            record.called = True
            record.finished = record.finished or event.final
            campaign.calls[event.call_id] = _Call(
                event.data_id, event.connected, event.final, day.date()
            )
        return "counted"

    def count_detail(self, vdn_id: int, today: date) -> list[dict[str, Any]]:
        """The ``countDetail`` the statistics API answers for ``vdn_id`` on ``today``."""
        detail = []
        for (vdn, campaign_id), campaign in sorted(self._campaigns.items()):
            if vdn != vdn_id or not campaign.records:
                continue
            batches = sorted(
                {r.batch_id for r in campaign.records.values() if r.batch_id is not None}
            )
            detail.append(
                {
                    "campaignId": campaign_id,
                    **_counters(campaign, today, None),
                    "batchDetail": [
                        {"batchId": batch, **_counters(campaign, today, batch)} for batch in batches
                    ],
                }
            )
        return detail


def _counters(campaign: _Campaign, today: date, batch_id: str | None) -> dict[str, int]:
    """The eleven counters of the campaign (``batch_id`` None) or of one of its batches."""
    records = {
        data_id: record
        for data_id, record in campaign.records.items()
        if batch_id is None or record.batch_id == batch_id
    }
    calls = [call for call in campaign.calls.values() if call.data_id in records]
    calls_today = [call for call in calls if call.day == today]
    values = {
        "totalCount": sum(1 for r in records.values() if not r.removed),
        "unCallCount": sum(1 for r in records.values() if not r.removed and not r.called),
        "totalCalledCount": len(calls),
        "totalCallSucc": sum(1 for call in calls if call.connected),
        "totalFinishCount": sum(1 for r in records.values() if r.finished),
        "dailyCalledCount": len(calls_today),
        "dailyCallSucc": sum(1 for call in calls_today if call.connected),
        "dailyFinishCount": len({call.data_id for call in calls_today if call.final}),
        "dailyCount": len(campaign.seen_on.get(today, set()) & records.keys()),
    }
    values["calledCount"] = values["dailyCalledCount"]
    values["finishCount"] = values["totalFinishCount"]
    return {name: values[name] for name in COUNTER_NAMES}
