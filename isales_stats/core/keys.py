"""The Redis key layout: the one place where key names are spelled.

The engine writes these keys, the API and the Grafana dashboards read them. Every key of one
campaign carries the hash tag ``{vdnId:campaignId}``, so that one counting step (a Lua script)
touches a single Redis Cluster slot. The key table of docs/architecture.md (section "Redis keys")
documents the same layout.

    {P}:vdn:{vdn}:campaigns                      set    a VDN's live campaignIds (counting)
    {P}:vdn:{vdn}:campaigns:released             zset   its released campaignIds -> when
                                                        their counters are deleted
    {P}:{vdn:c}:totals                           hash   campaign counters since the start
    {P}:{vdn:c}:day:{YYYY-MM-DD}                 hash   campaign counters of one day (expires)
    {P}:{vdn:c}:batches                          hash   batchId -> small number (record state)
    {P}:{vdn:c}:batch:{b}:totals                 hash   batch counters since the start
    {P}:{vdn:c}:batch:{b}:day:{YYYY-MM-DD}       hash   batch counters of one day (expires)
    {P}:{vdn:c}:rows                             hash   scope -> its totals, packed (API reads)
    {P}:{vdn:c}:day:{YYYY-MM-DD}:rows            hash   scope -> daily counters, packed (expires)
    {P}:{vdn:c}:records                          hash   dataId -> record state (flags:batch)
    {P}:{vdn:c}:calls                            set    callIds counted (upstream duplicates)
    {P}:{vdn:c}:day:{YYYY-MM-DD}:records         hash   dataId -> day flags and first hours
                                                        (expires)
    {P}:{vdn:c}:day:{YYYY-MM-DD}:hours           hash   "HH:counter" -> count, per hour of
                                                        the day (expires)
    {P}:{vdn:c}:day:{YYYY-MM-DD}:fails           hash   failCode -> failed calls (expires)
    {P}:{vdn:c}:batch:{b}:day:{YYYY-MM-DD}:hours hash   the same, for one batch (expires)
    {P}:{vdn:c}:batch:{b}:day:{YYYY-MM-DD}:fails hash   the same, for one batch (expires)
    {P}:{vdn:c}:window                           hash   rolling windows: calls, connects,
                                                        abandoned, finished per minute, hour
                                                        and day, and their sums (windows.py)
    {P}:{vdn:c}:batch:{b}:window                 hash   the same, for one batch
    {P}:{vdn:c}:progress                         stream calls/connects/finished per minute
    {P}:{vdn:c}:progress:current                 hash   the minute still accumulating
    {P}:{vdn:c}:changes                          stream the campaign's counters after each
                                                        change, capped (push)
    {P}:{vdn:c}:outbox                           stream notifications decided by counting or the
                                                        sweep, not yet delivered everywhere
    {P}:{vdn:c}:outbox:cursors                   hash   subscription id -> last entry delivered
    {P}:{vdn:c}:outbox:retries                   hash   subscription id -> the delivery being
                                                        retried (JSON: entry, first, attempts)
    {P}:{vdn:c}:notified                         hash   what was notified: the states whose
                                                        crossings make notifications
    {P}:outbox:due                               zset   "vdn:campaignId" with an outbox to look
                                                        at -> epoch ms since when
    {P}:outbox:wake                              channel the same members, as they are due
    {P}:webhooks:subscriptions                   hash   subscription id -> its JSON
    {P}:webhooks:dead                            stream deliveries given up, replayable
    {P}:notifier:lease:{shard}                   string the notifier that holds a shard (PX)
    {P}:notifier:members                         zset   live notifiers -> epoch ms they expire
    {P}:{vdn:c}:life                             hash   lifecycle: active, closed, released,
                                                        deleted (the tombstone, expires)
    {P}:lifecycle                                zset   "vdn:campaignId" -> when to look next
    {P}:counted:{topic}                          hash   partition -> last offset counted
    {P}:changes:vdn:{vdn}                        channel campaignIds whose changes were
                                                        recorded (Pub/Sub: not a key)
    {P}:gate:{caller}:vdn:{vdn}                  string a caller's flow-control count, one VDN
    {P}:gate:{caller}:vdn:{vdn}:{interface}      string the same, of another read interface
    {P}:gate:{caller}:all                        string a caller's count over all VDNs (expires)
    {P}:gate:{caller}:callbacks                  string a caller's result callbacks (expires)
    {P}:gate:{caller}:seen:{signature}           string a signature already used (expires)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Counter names are the API's field names, so a hash reads straight into a response.
TOTAL_COUNTERS = (
    "totalCount",
    "unCallCount",
    "totalCalledCount",
    "totalCallSucc",
    "totalFinishCount",
)
DAILY_COUNTERS = ("dailyCalledCount", "dailyCallSucc", "dailyFinishCount", "dailyCount")
# The eleven counters of a response entry: the nine stored, then two the seed describes with the
# same words as dailyCalledCount and totalFinishCount, of which they are copies.
RESPONSE_COUNTERS = (*TOTAL_COUNTERS, *DAILY_COUNTERS, "calledCount", "finishCount")
# The fields of a campaign's progress stream and of its current minute (besides "minute").
PROGRESS_FIELDS = ("calls", "connects", "finished")
# The fields of an entry of a campaign's change stream (push): today's label in the VDN's zone
# when it was recorded, then the campaign's totals and that day's daily counters, packed as the
# rows are ("1,2,3,4,5": TOTAL_COUNTERS, then DAILY_COUNTERS order).
CHANGE_FIELDS = ("day", "totals", "daily")
# The counters kept per hour of a day, by their name in the history's hour points, and the
# short name that follows the hour in a field of the day's hours hash ("09:calls"). The first
# four split a daily counter: calls and connected calls of the hour, and the records whose first
# event, or first final call, of the day fell in that hour (so that a day's hours add up to its
# daily counters). abandonedCalls: the hour's failed calls whose failCode says a person answered
# and no agent took the call (ABANDON_FAIL_CODES), what an abandon rate over a rolling window
# is made of.
HOUR_COUNTERS = {
    "dailyCalledCount": "calls",
    "dailyCallSucc": "connects",
    "dailyFinishCount": "finished",
    "dailyCount": "records",
    "abandonedCalls": "abandoned",
}
# iSales' failCodes of a call answered and then abandoned: 00701 queue abandoned, 00702 queue
# timed out, 01046 no agent could be seized (../shared/spec/isales-facts.md).
ABANDON_FAIL_CODES = ("00701", "00702", "01046")
# The Lua scripts get these names, and the suffixes below, from a prelude rendered from this
# module (isales_stats/engine/scripts.py): they spell none themselves, and a test that needs no
# Redis fails when one does. Packed rows follow the order of TOTAL_COUNTERS and DAILY_COUNTERS.

# What follows a campaign's key base "{P}:{vdn:c}", by role (the table in the docstring above).
CAMPAIGN_KEY_SUFFIXES = {
    "totals": ":totals",
    "day": ":day:",  # + YYYY-MM-DD; a day key takes "rows" or "records" after it too
    "batch": ":batch:",  # + batchId, then "totals" or "day"
    "batches": ":batches",
    "rows": ":rows",
    "records": ":records",
    "calls": ":calls",
    "progress": ":progress",
    "progress_current": ":progress:current",
    "life": ":life",
    "hours": ":hours",  # after a day key: the day's counters per hour
    "fails": ":fails",  # after a day key: the day's failed calls by failCode
    "changes": ":changes",
    "window": ":window",
    "outbox": ":outbox",
    "outbox_cursors": ":outbox:cursors",
    "outbox_retries": ":outbox:retries",
    "notified": ":notified",  # after a scope's base (the campaign's, or a batch's)
}
# The fields of a campaign's lifecycle hash (engine/campaign_lifecycle.lua): the worker-clock
# day (days since the epoch) of its last counted event, and epoch seconds of its end, of the
# release of its idempotence state and of the deletion of its counters.
LIFE_FIELDS = ("active", "closed", "released", "deleted")
_S = CAMPAIGN_KEY_SUFFIXES
# The read interface whose flow-control key is the VDN's own (KeyLayout.flow_control).
STATISTICS_INTERFACE = "statistics"

# What an id (campaignId, dataId, callId, batchId) may hold: anything but control characters
# and braces; braces would break the hash tag that keeps a campaign in one Redis Cluster slot.
# The same pattern stands in the event contract's JSON Schema (engine/call-event.schema.json).
FORBIDDEN_ID_CHARACTER_PATTERN = "[{}\\u0000-\\u001f\\u007f-\\u009f]"
_FORBIDDEN_ID_CHARACTER = re.compile(FORBIDDEN_ID_CHARACTER_PATTERN)


def is_allowed_identifier(value: str) -> bool:
    """True when ``value`` holds no control character and no brace."""
    return _FORBIDDEN_ID_CHARACTER.search(value) is None


@dataclass(frozen=True)
class KeyLayout:
    """Key names under one prefix (tests give each test its own prefix)."""

    prefix: str = "isales"

    def vdn_campaigns(self, vdn_id: int) -> str:
        """The VDN's live campaigns: what its whole-VDN read and the dashboards walk."""
        return f"{self.prefix}:vdn:{vdn_id}:campaigns"

    def vdn_released_campaigns(self, vdn_id: int) -> str:
        """Campaigns whose state was released -> epoch seconds at which their counters go.

        Apart from the live ones, so that a VDN's read costs what lives, however many ended:
        their final counters are still read by campaignId until the retention deletes them.
        """
        return f"{self.prefix}:vdn:{vdn_id}:campaigns:released"

    # A caller's admission keys (api/admission.py) share the hash tag {caller}: the one script
    # that checks a signature's first use and both budgets touches one Redis Cluster slot.
    def caller_base(self, caller_identity: str) -> str:
        return f"{self.prefix}:gate:{{{caller_identity}}}"

    def flow_control(
        self, caller_identity: str, vdn_id: int, interface: str = STATISTICS_INTERFACE
    ) -> str:
        """The API's request count of one caller for one VDN in the current window, for one
        read interface (each has its own budget, as each iSales interface has its own flow
        control). The statistics interface's key has no suffix: it was the only one before."""
        suffix = "" if interface == STATISTICS_INTERFACE else f":{interface}"
        return f"{self.caller_base(caller_identity)}:vdn:{vdn_id}{suffix}"

    def flow_control_all_vdns(self, caller_identity: str) -> str:
        """The API's request count of one caller over every VDN in the current window."""
        return f"{self.caller_base(caller_identity)}:all"

    def callback_flow_control(self, caller_identity: str) -> str:
        """The API's count of result callbacks from one caller (``token:{digest}``, ``ak:AK``,
        or ``address:IP`` on an open receiver) in the current window."""
        return f"{self.caller_base(caller_identity)}:callbacks"

    def signature_seen(self, caller_identity: str, signature: str) -> str:
        """Present while a signature that was used once could still pass (replay cache)."""
        return f"{self.caller_base(caller_identity)}:seen:{signature}"

    def vdn_changes_channel(self, vdn_id: int) -> str:
        """The Pub/Sub channel on which counting names a VDN's campaigns as their changes are
        recorded: what wakes the API processes that push (a channel, not a key: no slot)."""
        return f"{self.prefix}:changes:vdn:{vdn_id}"

    def lifecycle_schedule(self) -> str:
        """Campaigns ("vdnId:campaignId") -> epoch seconds at which the sweeper looks at them."""
        return f"{self.prefix}:lifecycle"

    def counted_offsets(self, topic: str) -> str:
        """Partition -> the last offset whose events are in the counters (resume points)."""
        return f"{self.prefix}:counted:{topic}"

    def campaign_base(self, vdn_id: int, campaign_id: str) -> str:
        """The common start of a campaign's keys; the Lua scripts append the suffixes below."""
        return f"{self.prefix}:{{{vdn_id}:{campaign_id}}}"

    def campaign_totals(self, vdn_id: int, campaign_id: str) -> str:
        return self.campaign_base(vdn_id, campaign_id) + _S["totals"]

    def campaign_day(self, vdn_id: int, campaign_id: str, day: str) -> str:
        return self.campaign_base(vdn_id, campaign_id) + _S["day"] + day

    def campaign_batches(self, vdn_id: int, campaign_id: str) -> str:
        return self.campaign_base(vdn_id, campaign_id) + _S["batches"]

    def batch_totals(self, vdn_id: int, campaign_id: str, batch_id: str) -> str:
        return self.campaign_base(vdn_id, campaign_id) + _S["batch"] + batch_id + _S["totals"]

    def batch_day(self, vdn_id: int, campaign_id: str, batch_id: str, day: str) -> str:
        return self.campaign_base(vdn_id, campaign_id) + _S["batch"] + batch_id + _S["day"] + day

    def campaign_rows(self, vdn_id: int, campaign_id: str) -> str:
        """Scope ("" = the campaign, else a batchId) -> "totalCount,…" (TOTAL_COUNTERS order)."""
        return self.campaign_base(vdn_id, campaign_id) + _S["rows"]

    def day_rows(self, vdn_id: int, campaign_id: str, day: str) -> str:
        """Scope -> "dailyCalledCount,…" (DAILY_COUNTERS order), for the scopes active that day."""
        return self.campaign_day(vdn_id, campaign_id, day) + _S["rows"]

    def campaign_records(self, vdn_id: int, campaign_id: str) -> str:
        return self.campaign_base(vdn_id, campaign_id) + _S["records"]

    def campaign_calls(self, vdn_id: int, campaign_id: str) -> str:
        return self.campaign_base(vdn_id, campaign_id) + _S["calls"]

    def day_records(self, vdn_id: int, campaign_id: str, day: str) -> str:
        return self.campaign_day(vdn_id, campaign_id, day) + _S["records"]

    def day_hours(
        self, vdn_id: int, campaign_id: str, day: str, batch_id: str | None = None
    ) -> str:
        """ "HH:calls" (HOUR_COUNTERS) -> count, HH the hour since the day's start, "00".."24"
        (a day with a daylight-saving change has 23 or 25 hours): a campaign's, or a batch's."""
        return self._scope_day(vdn_id, campaign_id, day, batch_id) + _S["hours"]

    def day_fails(
        self, vdn_id: int, campaign_id: str, day: str, batch_id: str | None = None
    ) -> str:
        """failCode -> the failed calls of the day with it ("" for none given): a campaign's, or
        a batch's (iSales' failcategorystatistics)."""
        return self._scope_day(vdn_id, campaign_id, day, batch_id) + _S["fails"]

    def _scope_day(self, vdn_id: int, campaign_id: str, day: str, batch_id: str | None) -> str:
        if batch_id is None:
            return self.campaign_day(vdn_id, campaign_id, day)
        return self.batch_day(vdn_id, campaign_id, batch_id, day)

    def scope_window(self, vdn_id: int, campaign_id: str, batch_id: str | None = None) -> str:
        """A campaign's, or a batch's, rolling windows (isales_stats/core/windows.py): bucket
        "m<minute>", "h<hour>", "d<day>" -> "calls,connects,abandoned,finished", and the
        fields life, last and sums."""
        base = self.campaign_base(vdn_id, campaign_id)
        if batch_id is not None:
            base += _S["batch"] + batch_id
        return base + _S["window"]

    def campaign_outbox(self, vdn_id: int, campaign_id: str) -> str:
        """Stream of the campaign's notifications (fields id, type, timestamp, data), in the
        order they were decided; trimmed once every subscription has them."""
        return self.campaign_base(vdn_id, campaign_id) + _S["outbox"]

    def campaign_outbox_cursors(self, vdn_id: int, campaign_id: str) -> str:
        """Subscription id -> the id of the last outbox entry delivered (or given up) to it."""
        return self.campaign_base(vdn_id, campaign_id) + _S["outbox_cursors"]

    def campaign_notified(self, vdn_id: int, campaign_id: str) -> str:
        """The states notified so far (finished, stalled, each window's abandon status, days
        closed, the notification sequence): a crossing is notified once."""
        return self.campaign_base(vdn_id, campaign_id) + _S["notified"]

    def outbox_due(self) -> str:
        """Campaigns ("vdnId:campaignId") whose outbox a notifier must look at -> epoch ms."""
        return f"{self.prefix}:outbox:due"

    def outbox_wake_channel(self) -> str:
        """Pub/Sub: the same members, published as notifications are written (a channel)."""
        return f"{self.prefix}:outbox:wake"

    def webhook_subscriptions(self) -> str:
        """Subscription id -> its JSON (url, VDNs, secret, kinds, created)."""
        return f"{self.prefix}:webhooks:subscriptions"

    def webhook_dead_letters(self) -> str:
        """Deliveries given up after the retry period, with the reason: what replay sends."""
        return f"{self.prefix}:webhooks:dead"

    def campaign_outbox_retries(self, vdn_id: int, campaign_id: str) -> str:
        """Subscription id -> the delivery being retried (entry id, first attempt, attempts,
        next attempt): what lets another notifier go on where a dead one stopped."""
        return self.campaign_base(vdn_id, campaign_id) + _S["outbox_retries"]

    def notifier_lease(self, shard: int) -> str:
        """The id of the notifier delivering the due campaigns of one shard (expires: PX)."""
        return f"{self.prefix}:notifier:lease:{shard}"

    def notifier_members(self) -> str:
        """Live notifiers -> epoch ms at which each is presumed dead (how many share)."""
        return f"{self.prefix}:notifier:members"

    def campaign_progress(self, vdn_id: int, campaign_id: str) -> str:
        """Stream of finished minutes: id = the minute's start, fields calls/connects/finished."""
        return self.campaign_base(vdn_id, campaign_id) + _S["progress"]

    def campaign_changes(self, vdn_id: int, campaign_id: str) -> str:
        """Stream of the campaign's counters after each change (CHANGE_FIELDS), capped: id =
        Redis' time of the change, what a push subscriber resumes from."""
        return self.campaign_base(vdn_id, campaign_id) + _S["changes"]

    def campaign_life(self, vdn_id: int, campaign_id: str) -> str:
        """The campaign's lifecycle (LIFE_FIELDS); after deletion its tombstone, which expires."""
        return self.campaign_base(vdn_id, campaign_id) + _S["life"]

    def campaign_progress_current(self, vdn_id: int, campaign_id: str) -> str:
        """The minute still accumulating: fields minute (epoch ms), calls, connects, finished."""
        return self.campaign_base(vdn_id, campaign_id) + _S["progress_current"]
