"""Notifications: their kinds, the fields of an outbox entry and of a campaign's notified hash.

Counting (engine/count_events/notifications.lua) and the workers' sweep decide notifications
and write them to the campaign's outbox stream (KeyLayout.campaign_outbox); the notifier
delivers whatever is there. Both sides, and the reference model that predicts them, read the
names here; the Lua prelude is rendered from them (engine/scripts.py), so no script spells one.

A notification's id is deterministic: "msg_" + 16 hex digits of sha1("vdnId:campaignId") + "_"
+ the campaign's sequence number of it (1, 2, ...), kept in the notified hash. The same crossing
counted again (a replay, a duplicate) finds its state already notified and writes nothing, so
an id never stands for two notifications, and a delivery repeated carries the same id.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from types import MappingProxyType

from isales_stats.core.decisions import AbandonLimit, Status

CAMPAIGN_FINISHED = "campaign.finished"
CAMPAIGN_STALLED = "campaign.stalled"
CAMPAIGN_RESUMED = "campaign.resumed"
ABANDON_WARNING = "abandon.warning"
ABANDON_OVER = "abandon.over"
ABANDON_OK = "abandon.ok"
DAY_CLOSED = "day.closed"
CAMPAIGN_RELEASED = "campaign.released"
KINDS = (
    CAMPAIGN_FINISHED,
    CAMPAIGN_STALLED,
    CAMPAIGN_RESUMED,
    ABANDON_WARNING,
    ABANDON_OVER,
    ABANDON_OK,
    DAY_CLOSED,
    CAMPAIGN_RELEASED,
)
# The kind written when a window's abandon status becomes this one.
KIND_OF_STATUS: MappingProxyType[Status, str] = MappingProxyType(
    {"ok": ABANDON_OK, "warning": ABANDON_WARNING, "over": ABANDON_OVER}
)
# The windows whose abandon status is notified, by their name in a notification's data, and
# the part of a scope's counts they are (isales_stats/core/decisions.py: today's day bucket,
# the rolling 24 hours and 30 days). A window not notified yet is "ok".
NOTIFIED_WINDOWS = MappingProxyType({"today": "today", "rolling24h": "h24", "rolling30d": "d30"})

# The names in a notification's data: every one opens with the first two, an abandon status
# then has the rest, in this order; the others then have counters (core.keys' names).
DATA_FIELDS = (
    "vdnId",
    "campaignId",
    "window",
    "abandoned",
    "denominator",
    "ratePercent",
    "limitPercent",
    "day",
)
# The fields of an outbox entry, in the order they are written.
OUTBOX_FIELDS = ("id", "type", "timestamp", "data")

# The fields of a campaign's notified hash. sequence: the last notification's number. finished,
# stalled: "1" while that state is notified (finished goes back to "0" when records are added
# to a finished campaign, so that it can finish again; a call counted clears stalled and
# notifies resumed). The abandon status last notified of each window, under "abandon:" and the
# window's name. dayClosed: the latest day ("YYYY-MM-DD") whose day.closed was written.
# releaseNotified: "1" once campaign.released was written. unannounced: "1" from when counting
# writes an entry until the worker has put the campaign in the due set (engine/counting.py): a
# worker that died in between leaves it, and the next counting call of the campaign announces
# it.
NOTIFIED_FIELDS = MappingProxyType(
    {
        "sequence": "sequence",
        "finished": "finished",
        "stalled": "stalled",
        "day_closed": "dayClosed",
        "released": "releaseNotified",
        "unannounced": "unannounced",
    }
)
ABANDON_STATUS_FIELD = "abandon:"  # + a window's name (NOTIFIED_WINDOWS)


def id_prefix(vdn_id: int, campaign_id: str) -> str:
    """What every notification id of a campaign starts with."""
    digest = hashlib.sha1(f"{vdn_id}:{campaign_id}".encode(), usedforsecurity=False)
    return f"msg_{digest.hexdigest()[:16]}_"


def notification_id(vdn_id: int, campaign_id: str, sequence: int) -> str:
    """The id of a campaign's notification number ``sequence`` (1, 2, ...)."""
    return f"{id_prefix(vdn_id, campaign_id)}{sequence}"


def timestamp_of(epoch_seconds: float) -> str:
    """An entry's timestamp: ISO 8601 in UTC, milliseconds, "Z" (2024-05-01T08:00:00.000Z)."""
    millis = int(epoch_seconds * 1000)
    moment = datetime.fromtimestamp(millis // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"


def status_fractions(limit: AbandonLimit) -> str:
    """The limit and its warning level as the counting script compares them, in integers:
    "overNumerator,overDenominator,warningNumerator,warningDenominator" (AbandonLimit.status's
    own fractions, so that a status notified is the status the API reports)."""
    over, warning = limit.limit, limit.warning
    return f"{over.numerator},{over.denominator},{warning.numerator},{warning.denominator}"
