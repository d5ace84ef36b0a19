"""Names of the statistics interface that the client and the API must spell alike.

The signing client (``isales_stats.client``) and the API (``isales_stats.api``) stand on
different floors, neither importing the other, and a path or a Content-Type spelled twice
drifts apart silently: a signed request to a path the API does not serve is a 404, and the
Content-Type is a signed header. So both take them from here, the floor below them.
"""

from __future__ import annotations

# The CC-iSales path, a str.format template (vdn_id=...). The API routes it with the path
# parameter named vdnId, as the iSales documentation names it.
STATISTICS_PATH = "/rest/isales/v2/openapi/campaigns/{vdn_id}/statistics"
# Its CC-iSales sibling: a campaign's failed calls by failCode, per day (a v1 path in iSales).
FAIL_CATEGORY_PATH = "/rest/isales/v1/openapi/campaigns/{vdn_id}/failcategorystatistics"
# Our extension, beside the statistics it extends: the same counters for past days and hours.
HISTORY_PATH = STATISTICS_PATH + "/history"
# Our extension too: the statistics pushed as Server-Sent Events while they change.
STREAM_PATH = STATISTICS_PATH + "/stream"
# And a campaign's calls, connects and finished records per minute, of the last minutes.
PROGRESS_PATH = STATISTICS_PATH + "/progress"
# The statistics and the history as files to download, CSV or NDJSON, streamed.
STATISTICS_EXPORT_PATH = STATISTICS_PATH + "/export"
HISTORY_EXPORT_PATH = HISTORY_PATH + "/export"
EXPORT_FORMATS = ("csv", "ndjson")
# And the decisions made of the rolling windows: abandoned calls against the limit, and pacing.
ABANDON_RATE_PATH = STATISTICS_PATH + "/abandonrate"
PACING_PATH = STATISTICS_PATH + "/pacing"
EVENT_STREAM_MEDIA_TYPE = "text/event-stream"

# iSales requires this Content-Type on the request (and signs it); the API also accepts the
# bare media type, with any case and spacing (api/parameters.py).
JSON_MEDIA_TYPE = "application/json"
CONTENT_TYPE = f"{JSON_MEDIA_TYPE}; charset=UTF-8"

# A push event's change id, its stream id in Redis ("ms-seq"), as the tuple that orders it:
# the API resumes from it, and clients keep a campaign's change only when its id is newer.
ChangeId = tuple[int, int]


def parse_change_id(text: str) -> ChangeId:
    """``"1700000000000-3"`` -> (1700000000000, 3); ValueError for anything else."""
    ms, dash, seq = text.partition("-")
    if not (dash and ms.isascii() and ms.isdigit() and seq.isascii() and seq.isdigit()):
        raise ValueError(f"not a change id (digits-digits): {text[:40]!r}")
    if len(ms) > 15 or len(seq) > 19:
        raise ValueError(f"not a change id (too long): {text[:40]!r}")
    return int(ms), int(seq)


def format_change_id(change_id: ChangeId) -> str:
    return f"{change_id[0]}-{change_id[1]}"
