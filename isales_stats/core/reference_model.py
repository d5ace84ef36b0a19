"""The counting rules as a naive Python model: the test suite's oracle and ``simulate --expect``.

One model serves both on purpose: what ``isales-stats simulate --expect`` predicts is what the
tests hold the engine to. It is written apart from the engine, which counts in Lua
(``engine/count_events/``), and imports nothing of it: a prediction computed by the code under
test would prove nothing. It reads events as the contract spells them (JSON objects: the wire
form, or ``CallEvent.to_json()``), so that it does not lean on the decoder either. Memory grows
with the accepted events (each is kept): fine for tests and for ``simulate``'s finite traffic.

Two steps:

1. Acceptance, the only order-dependent part (Kafka keeps a campaign's order). Events are
   walked in the given order (``ReferenceModel.add``):

   * an event whose identity was already accepted is a duplicate and is ignored (neither
     accepted nor rejected), even if its batchId differs: the duplicate check runs first.
     Identities: ``data.added`` -> (vdnId, campaignId, dataId), ``data.removed`` -> (vdnId,
     campaignId, dataId), ``call.result`` -> (vdnId, campaignId, callId);
   * otherwise the event is a conflict, rejected (dead-lettered), if its batchId (None when
     absent) differs from the batch of its record (vdnId, campaignId, dataId), which is the
     batchId of the first accepted event of that record;
   * otherwise it is accepted (counted).

2. Counting. Every counter is a set/len expression over the accepted events of one scope: a
   campaign (vdnId, campaignId), or one batch of it. Records without a batch belong to their
   campaign but to no batch. Days are dates of occurredAt in the VDN's time zone. The rules, as
   docs/events.md states them (section "Counting rules"): ``totalCount`` the known records not
   removed, ``unCallCount`` those also never called, ``totalCalledCount`` / ``totalCallSucc``
   the calls and connected calls, ``totalFinishCount`` the records with a final call (a
   removal does not undo it);
   ``dailyCount`` the records with an import or a call that day, ``dailyFinishCount`` those with
   a final call that day; ``calledCount`` repeats ``dailyCalledCount`` and ``finishCount``
   repeats ``totalFinishCount``.

   History (docs/api.md, "History"): ``fail_data`` the failed calls of a day by failCode ("" for
   none given), as iSales' failcategorystatistics counts them; ``hourly`` splits a day's
   counters by the hour of the day (hours elapsed since the day's start, so 0..24 on a day whose
   clocks go back), a record counting in the hour of its earliest event (or earliest final call)
   of the day, and counts each hour's abandoned calls (a failed call whose failCode is one of
   ``abandon_fail_codes``, by default 00701, 00702 and 01046: answered, and no agent took it);
   ``totals_at_end`` the call totals as they stood at a day's end, by occurredAt.

   Rolling windows (isales_stats/core/windows.py, docs/adr/0008-rolling-windows.md): a scope's
   calls, connects, abandoned calls and finished records per minute, hour and day bucket of
   its calls' occurredAt, over its life, and its latest call's minute. A record finishes in
   the buckets of its first final call *as accepted*: the one its totalFinishCount counted, so
   that this part follows the acceptance order (feed the model the stream as delivered).
   ``window_buckets`` and ``window_sums`` answer at a given ``Now``: the buckets in some window
   then (what the engine keeps), and each window's sum.

Not modelled: what the worker refuses before counting (events stamped in the future beyond the
clock skew, events that break the contract) and days older than the retention. ``simulate``
never produces them, and the tests that do check the engine's refusals on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import Any, Literal

from isales_stats.core.decisions import AbandonLimit
from isales_stats.core.keys import ABANDON_FAIL_CODES
from isales_stats.core.notification_kinds import (
    CAMPAIGN_FINISHED,
    CAMPAIGN_RESUMED,
    DAY_CLOSED,
    KIND_OF_STATUS,
    NOTIFIED_WINDOWS,
    notification_id,
    timestamp_of,
)
from isales_stats.core.windows import WINDOWS, Now, day_number, hour_number, hour_shift

Event = Mapping[str, Any]
Outcome = Literal["counted", "duplicate", "conflict", "ended"]

ADDED = "data.added"
CALL = "call.result"
REMOVED = "data.removed"
# A campaign's end moves no counter: what it changes is memory, after a grace the model does
# not simulate (engine/lifecycle.py; the lifecycle tests hold the engine to that part).
CLOSED = "campaign.closed"
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


DAILY_NAMES = ("dailyCalledCount", "dailyCallSucc", "dailyFinishCount", "dailyCount")
# The hours split the daily counters, and count the calls abandoned: answered by a person whom no
# agent took (iSales' failCodes 00701 queue abandoned, 00702 queue timed out, 01046 no agent).
HOUR_NAMES = (*DAILY_NAMES, "abandonedCalls")

# A bucket's, a window's or a life's calls, connects, abandoned calls and finished records (the
# order of core.windows.BUCKET_FIELDS); a bucket by its kind ("minute", "hour", "day") and number.
BucketCounts = tuple[int, int, int, int]
Bucket = tuple[str, int]
NO_COUNTS: BucketCounts = (0, 0, 0, 0)


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


def _instant(occurred_at: str | int) -> datetime:
    if isinstance(occurred_at, int):
        return _EPOCH + timedelta(milliseconds=occurred_at)
    return datetime.fromisoformat(occurred_at)


def hour_of(occurred_at: str | int, day: date, zone: tzinfo) -> int:
    """Hours elapsed from the start of ``day`` in ``zone`` to ``occurredAt`` (whole hours)."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return (_instant(occurred_at) - start) // timedelta(hours=1)


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


class ReferenceModel:
    """Feed events with ``add`` in publishing order; read any counter at any time.

    ``zone_of`` gives a VDN's time zone (``Settings.time_zone_of``, or a test's own);
    ``abandon_fail_codes`` the failCodes of an abandoned call (``Settings.abandon_fail_code_set``).
    """

    def __init__(
        self,
        zone_of: Callable[[int], tzinfo],
        abandon_fail_codes: Collection[str] = ABANDON_FAIL_CODES,
    ) -> None:
        self.zone_of = zone_of
        self.abandon_fail_codes = frozenset(abandon_fail_codes)
        self.accepted: list[Event] = []
        self.rejected: list[Event] = []
        self._seen: set[tuple[Any, ...]] = set()
        self._batch_of: dict[tuple[Any, Any, Any], str | None] = {}
        # (vdnId, campaignId) -> its accepted events: only an index, so that a long simulated
        # run does not filter every event of every campaign for each scope.
        self._by_campaign: dict[tuple[Any, Any], list[Event]] = {}

    def add(self, event: Event) -> Outcome:
        """Step 1 for one event: ``"counted"``, ``"duplicate"``, ``"conflict"`` or ``"ended"``
        (a campaign.closed)."""
        if event["eventType"] == CLOSED:
            return "ended"
        identity = _identity(event)
        if identity in self._seen:
            return "duplicate"
        batch = event.get("batchId")
        # setdefault: the first event of a record that gets here is accepted and fixes the batch.
        if self._batch_of.setdefault(_record(event), batch) != batch:
            self.rejected.append(event)
            return "conflict"
        self._seen.add(identity)
        self.accepted.append(event)
        self._by_campaign.setdefault((event["vdnId"], event["campaignId"]), []).append(event)
        return "counted"

    def _events(self, vdn_id: int, campaign_id: str, batch_id: str | None) -> list[Event]:
        """Accepted events of a campaign, or of one batch of it when ``batch_id`` is given."""
        # Filtering events by batchId equals filtering by record batch: all accepted events
        # of a record carry the same batchId (step 1 rejects the others).
        return [
            e
            for e in self._by_campaign.get((vdn_id, campaign_id), [])
            if batch_id is None or e.get("batchId") == batch_id
        ]

    def campaigns(self, vdn_id: int) -> list[str]:
        """Campaigns of a VDN that have at least one accepted event, sorted."""
        return sorted(campaign for vdn, campaign in self._by_campaign if vdn == vdn_id)

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

    def fail_data(
        self, vdn_id: int, campaign_id: str, day: date, batch_id: str | None = None
    ) -> dict[str, int]:
        """Failed calls (callStatus 5) of one day by failCode; "" for those without one."""
        zone = self.zone_of(vdn_id)
        codes: dict[str, int] = {}
        for e in self._events(vdn_id, campaign_id, batch_id):
            failed = e["eventType"] == CALL and e["callStatus"] != CONNECTED
            if failed and occurred_day(e["occurredAt"], zone) == day:
                code = e.get("failCode") or ""
                codes[code] = codes.get(code, 0) + 1
        return codes

    def hourly(
        self, vdn_id: int, campaign_id: str, day: date, batch_id: str | None = None
    ) -> dict[int, dict[str, int]]:
        """The daily counters of ``day`` split by hour, and its abandoned calls by hour (only
        hours with something counted)."""
        zone = self.zone_of(vdn_id)
        on_day = [
            e
            for e in self._events(vdn_id, campaign_id, batch_id)
            if occurred_day(e["occurredAt"], zone) == day
        ]
        hours: dict[int, dict[str, int]] = {}

        def add(hour: int, counter: str) -> None:
            counters = hours.setdefault(hour, dict.fromkeys(HOUR_NAMES, 0))
            counters[counter] += 1

        first_seen: dict[Any, int] = {}
        first_final: dict[Any, int] = {}
        for e in on_day:
            hour = hour_of(e["occurredAt"], day, zone)
            if e["eventType"] in (ADDED, CALL):
                first_seen[e["dataId"]] = min(hour, first_seen.get(e["dataId"], hour))
            if e["eventType"] == CALL:
                add(hour, "dailyCalledCount")
                if e["callStatus"] == CONNECTED:
                    add(hour, "dailyCallSucc")
                elif e.get("failCode") in self.abandon_fail_codes:
                    add(hour, "abandonedCalls")
                if e["final"] is True:
                    first_final[e["dataId"]] = min(hour, first_final.get(e["dataId"], hour))
        for hour in first_seen.values():
            add(hour, "dailyCount")
        for hour in first_final.values():
            add(hour, "dailyFinishCount")
        return hours

    def totals_at_end(
        self, vdn_id: int, campaign_id: str, day: date, batch_id: str | None = None
    ) -> dict[str, int]:
        """The call totals as they stood at the end of ``day``: calls that occurred by then."""
        zone = self.zone_of(vdn_id)
        calls = [
            e
            for e in self._events(vdn_id, campaign_id, batch_id)
            if e["eventType"] == CALL and occurred_day(e["occurredAt"], zone) <= day
        ]
        return {
            "totalCalledCount": len(calls),
            "totalCallSucc": sum(1 for c in calls if c["callStatus"] == CONNECTED),
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

    def _window_calls(
        self, vdn_id: int, campaign_id: str, batch_id: str | None
    ) -> list[tuple[dict[str, int], BucketCounts]]:
        """Each accepted call of a scope, in acceptance order: its bucket number of each kind,
        and what it counts (a call; connected; abandoned; its record's first final call)."""
        zone = self.zone_of(vdn_id)
        finished: set[Any] = set()
        calls: list[tuple[dict[str, int], BucketCounts]] = []
        for e in self._events(vdn_id, campaign_id, batch_id):
            if e["eventType"] != CALL:
                continue
            minute = (_instant(e["occurredAt"]) - _EPOCH) // timedelta(minutes=1)
            day = occurred_day(e["occurredAt"], zone)
            connected = e["callStatus"] == CONNECTED
            abandoned = not connected and e.get("failCode") in self.abandon_fail_codes
            finishes = e["final"] is True and e["dataId"] not in finished
            if finishes:
                finished.add(e["dataId"])
            numbers = {
                "minute": minute,
                "hour": hour_number(minute, hour_shift(day, zone)),
                "day": day_number(day),
            }
            calls.append((numbers, (1, int(connected), int(abandoned), int(finishes))))
        return calls

    def window_buckets(
        self, vdn_id: int, campaign_id: str, now: Now, batch_id: str | None = None
    ) -> dict[Bucket, BucketCounts]:
        """A scope's buckets that are in some window at ``now``: what its window hash holds."""
        oldest = {
            kind: min(now.first_bucket(name) for name, (of, _) in WINDOWS.items() if of == kind)
            for kind, _ in WINDOWS.values()
        }
        buckets: dict[Bucket, BucketCounts] = {}
        for numbers, counts in self._window_calls(vdn_id, campaign_id, batch_id):
            for kind, number in numbers.items():
                if number >= oldest[kind]:
                    buckets[(kind, number)] = _plus(buckets.get((kind, number), NO_COUNTS), counts)
        return buckets

    def window_sums(
        self, vdn_id: int, campaign_id: str, now: Now, batch_id: str | None = None
    ) -> dict[str, BucketCounts]:
        """Each window's sum at ``now`` (core.windows.WINDOWS, by name): its kind's buckets from
        its first one on, later ones included."""
        calls = self._window_calls(vdn_id, campaign_id, batch_id)
        sums = dict.fromkeys(WINDOWS, NO_COUNTS)
        for name, (kind, _) in WINDOWS.items():
            for numbers, counts in calls:
                if numbers[kind] >= now.first_bucket(name):
                    sums[name] = _plus(sums[name], counts)
        return sums

    def window_life(
        self, vdn_id: int, campaign_id: str, batch_id: str | None = None
    ) -> BucketCounts:
        """A scope's calls, connects, abandoned calls and finished records over its life."""
        life = NO_COUNTS
        for _, counts in self._window_calls(vdn_id, campaign_id, batch_id):
            life = _plus(life, counts)
        return life

    def last_call_minute(
        self, vdn_id: int, campaign_id: str, batch_id: str | None = None
    ) -> int | None:
        """The epoch minute of a scope's latest call by occurredAt; None when it made none."""
        calls = self._window_calls(vdn_id, campaign_id, batch_id)
        return max((numbers["minute"] for numbers, _ in calls), default=None)

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


def _plus(one: BucketCounts, other: BucketCounts) -> BucketCounts:
    return (one[0] + other[0], one[1] + other[1], one[2] + other[2], one[3] + other[3])


def reference_statistics(
    events: Iterable[Event],
    *,
    default_zone: tzinfo = GMT8,
    vdn_zones: Mapping[int, tzinfo] = MappingProxyType({}),  # read-only: safe shared default
) -> ReferenceModel:
    """The model after ``events`` (in order); counters are computed on demand from it."""
    zones = dict(vdn_zones)
    model = ReferenceModel(lambda vdn_id: zones.get(vdn_id, default_zone))
    for event in events:
        model.add(event)
    return model


# --- notifications ----------------------------------------------------------------------------

# A campaign's totals in the order a notification's data lists them (core.keys.TOTAL_COUNTERS).
_TOTALS_ORDER = (
    "totalCount",
    "unCallCount",
    "totalCalledCount",
    "totalCallSucc",
    "totalFinishCount",
)


class NotificationModel:
    """The notifications of a stream, as counting decides them (docs/notifications.md).

    What is exact, and what is not: counting decides once per script call, after all of a
    campaign's events in it, so the notifications depend on how the stream was cut into calls
    and on the clock of each. Feed ``count`` the stream exactly as it was counted: each call's
    events (one batch of one or more campaigns) and the worker's clock then. For a given cut,
    the prediction is exact: kinds, order per campaign, ids, timestamps and data. Whatever the
    cut and the order, the last abandon status notified of each window is that window's status
    at the last call that counted a call, a duplicate or a replay notifies nothing, and a
    campaign finished at the end was notified finished exactly once since its last record was
    added.

    ``limit_of`` gives a VDN's AbandonLimit (Settings.abandon_limit_of and
    abandon_warning_fraction). Notifications are dicts: id, type, timestamp, data (a dict).
    """

    def __init__(
        self,
        model: ReferenceModel,
        limit_of: Callable[[int], AbandonLimit],
        stall_minutes: int = 10,
    ) -> None:
        self.model = model
        self.limit_of = limit_of
        self.stall_minutes = stall_minutes
        self.outboxes: dict[tuple[int, str], list[dict[str, Any]]] = {}
        # (vdnId, campaignId) -> its notified state: sequence, finished, stalled, abandon
        # status per window.
        self._notified: dict[tuple[int, str], dict[str, Any]] = {}

    def outbox(self, vdn_id: int, campaign_id: str) -> list[dict[str, Any]]:
        return self.outboxes.get((vdn_id, campaign_id), [])

    def _state(self, campaign: tuple[int, str]) -> dict[str, Any]:
        return self._notified.setdefault(
            campaign, {"sequence": 0, "finished": False, "stalled": False, "abandon": {}}
        )

    def _write(
        self, campaign: tuple[int, str], kind: str, at_ms: int, data: dict[str, Any]
    ) -> None:
        state = self._state(campaign)
        state["sequence"] += 1
        vdn_id, campaign_id = campaign
        self.outboxes.setdefault(campaign, []).append(
            {
                "id": notification_id(vdn_id, campaign_id, state["sequence"]),
                "type": kind,
                "timestamp": timestamp_of(at_ms / 1000),
                "data": {"vdnId": vdn_id, "campaignId": campaign_id, **data},
            }
        )

    def count(self, events: Iterable[Event], at_ms: int) -> None:
        """One counting call per campaign of ``events``, on a worker clock at ``at_ms``."""
        counted: dict[tuple[int, str], dict[str, bool]] = {}
        for event in events:
            campaign = (event["vdnId"], event["campaignId"])
            flags = counted.setdefault(campaign, {"any": False, "calls": False})
            if self.model.add(event) == "counted":
                flags["any"] = True
                flags["calls"] = flags["calls"] or event["eventType"] == CALL
        for campaign, flags in counted.items():
            if flags["any"]:
                self._decide(campaign, flags["calls"], at_ms)

    def _decide(self, campaign: tuple[int, str], calls: bool, at_ms: int) -> None:
        vdn_id, campaign_id = campaign
        state = self._state(campaign)
        totals = self.model.campaign_totals(vdn_id, campaign_id)
        listed = {name: totals[name] for name in _TOTALS_ORDER}
        if calls:
            if state["stalled"]:
                state["stalled"] = False
                self._write(campaign, CAMPAIGN_RESUMED, at_ms, listed)
            self._abandon_statuses(campaign, at_ms)
        records = totals["totalCount"]
        finished = records > 0 and totals["totalFinishCount"] >= records
        if finished and not state["finished"]:
            self._write(campaign, CAMPAIGN_FINISHED, at_ms, listed)
        state["finished"] = finished

    def sweep(self, vdn_id: int, campaign_id: str, at_ms: int) -> None:
        """The workers' sweep of a campaign at ``at_ms`` (engine/notifications/sweep.py), as far
        as abandon statuses go: a campaign with a window notified other than "ok" has every
        window's status looked at again, old calls having left the rolling windows and today
        having perhaps become another day."""
        campaign = (vdn_id, campaign_id)
        if any(status != "ok" for status in self._state(campaign)["abandon"].values()):
            self._abandon_statuses(campaign, at_ms)

    def close_days(self, vdn_id: int, campaign_id: str, at_ms: int) -> None:
        """The day.closed part of the workers' sweep at ``at_ms``, which follows ``sweep``'s in
        the same step (engine/notifications/sweep.lua): each day that ended in the VDN's zone
        and has counters of the campaign (an accepted event of it that day), in order, once;
        a campaign never closed before closes the latest ended day only. The retention is not
        modelled (the tests' days are recent)."""
        campaign = (vdn_id, campaign_id)
        state = self._state(campaign)
        zone = self.zone_of(vdn_id)
        days = sorted(
            {
                occurred_day(event["occurredAt"], zone)
                for event in self.model._events(vdn_id, campaign_id, None)
            }
        )
        yesterday = datetime.fromtimestamp(at_ms / 1000, zone).date() - timedelta(days=1)
        closed: date | None = state.get("day_closed")
        ended = [day for day in days if day <= yesterday]
        if closed is None:
            ended = [day for day in ended if day == yesterday]
        for day in ended:
            if closed is None or day > closed:
                data = {**self.model.daily(vdn_id, campaign_id, day), "day": day.isoformat()}
                self._write(campaign, DAY_CLOSED, at_ms, data)
                closed = day
        state["day_closed"] = closed

    def _abandon_statuses(self, campaign: tuple[int, str], at_ms: int) -> None:
        """Each window's abandon status at ``at_ms``, notified where it changed."""
        vdn_id, campaign_id = campaign
        state = self._state(campaign)
        limit = self.limit_of(vdn_id)
        counts = self.abandon_counts(vdn_id, campaign_id, at_ms)
        for window in NOTIFIED_WINDOWS:
            window_counts = counts[window]
            abandoned = window_counts[2]
            # live calls: those a person answered, connected or abandoned
            denominator = window_counts[1] + abandoned
            status = limit.status(abandoned, denominator) if denominator else "ok"
            if status != state["abandon"].get(window, "ok"):
                state["abandon"][window] = status
                rate = _percent_of(abandoned, denominator)
                self._write(
                    campaign,
                    KIND_OF_STATUS[status],
                    at_ms,
                    {
                        "window": window,
                        "abandoned": abandoned,
                        "denominator": denominator,
                        "ratePercent": rate,
                        "limitPercent": float(limit.limit_percent),
                    },
                )

    def abandon_counts(self, vdn_id: int, campaign_id: str, at_ms: int) -> dict[str, BucketCounts]:
        """Each notified window's counts at ``at_ms``: today's day bucket, and the sums of the
        rolling 24 hours and 30 days."""
        now = Now.at(at_ms, self.zone_of(vdn_id))
        sums = self.model.window_sums(vdn_id, campaign_id, now)
        today = NO_COUNTS
        for numbers, counts in self.model._window_calls(vdn_id, campaign_id, None):
            if numbers["day"] == now.day:
                today = _plus(today, counts)
        return {
            window: today if part == "today" else sums[part]
            for window, part in NOTIFIED_WINDOWS.items()
        }

    def zone_of(self, vdn_id: int) -> tzinfo:
        return self.model.zone_of(vdn_id)


def _percent_of(part: int, whole: int) -> float | None:
    """``part / whole`` in percent, two decimals, halves up (as a rate is shown)."""
    if whole == 0:
        return None
    return (20000 * part + whole) // (2 * whole) / 100
