"""GET /rest/isales/v2/openapi/campaigns/{vdnId}/statistics/history: past days and hours.

Our extension (iSales answers today only): a campaign's, or one batch's, daily counters for each
day of a range (its ends at most 30 days apart, within the retention, none after today), or for
each hour of those days (hours in the VDN's zone, 23 or 25 on days whose clocks change). The
parameters follow the failcategorystatistics sibling (campaignId, startDate, endDate), the
counters keep the statistics body's names, and a day's entry adds the call totals as they stood
at its end (engine/history.py says why the three record totals are left out). The same checks
as the statistics interface, with a flow-control budget of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from isales_stats.api.dependencies import HistoryReaderDep
from isales_stats.api.errors import ErrorCode
from isales_stats.api.interfaces import GuardedRead, ReadInterface
from isales_stats.api.parameters import (
    BATCH,
    END_DATE,
    INTERVAL,
    MANDATORY_CAMPAIGN,
    START_DATE,
    DayRangeQuery,
    requested_days,
)
from isales_stats.api.responses import DAY_RANGE_ERRORS, success
from isales_stats.api.schemas import HistoryResponse
from isales_stats.core.days import day_start, hours_in, today_in
from isales_stats.core.interface import HISTORY_PATH
from isales_stats.core.keys import DAILY_COUNTERS, HOUR_COUNTERS
from isales_stats.engine.history import FLOW_TOTALS, DayHistory

router = APIRouter()

INTERFACE = ReadInterface(
    path=HISTORY_PATH,
    summary="Statistics of past days, by day or by hour (an extension of iSales)",
    budget="history",
    parameters=(MANDATORY_CAMPAIGN, BATCH, START_DATE, END_DATE, INTERVAL),
    query=DayRangeQuery,
    errors=(
        *DAY_RANGE_ERRORS,
        (ErrorCode.WRONG_VALUE, "interval must be day or hour, got 'week'"),
        (
            ErrorCode.INVALID_CHARACTERS,
            "batchId may not hold control characters, '{' or '}', or bytes that are not UTF-8, "
            "got 'a{b'",
        ),
    ),
    answer="The scope's days, or hours, ascending.",
    response_model=HistoryResponse,
)


@INTERFACE.route(router)
async def statistics_history(
    guarded: Annotated[GuardedRead[DayRangeQuery], Depends(INTERFACE.guard)],
    reader: HistoryReaderDep,
) -> Response:
    """A campaign's (or a batch's) daily counters per day or per hour from startDate to endDate
    (today in the VDN's zone when neither is given); zeros where nothing was counted."""
    query, settings = guarded.query, guarded.settings
    zone = settings.time_zone_of(query.vdn_id)
    days = requested_days(query, settings)
    history = await guarded.read(
        reader.days_read(
            query.vdn_id,
            query.campaign_id,
            days,
            today_in(zone),
            batch_id=query.batch_id,
            hours=query.interval == "hour",
        )
    )
    points = (
        [point for day in history for point in hour_points(day, zone)]
        if query.interval == "hour"
        else [day_point(day) for day in history]
    )
    return success(
        {
            "vdnId": query.vdn_id,
            "campaignId": query.campaign_id,
            "batchId": query.batch_id,
            "interval": query.interval,
            "timeZone": settings.time_zone_name_of(query.vdn_id),
            "points": points,
        }
    )


# The members of a day's point and of an hour's, in their order (the export's CSV columns).
DAY_POINT_FIELDS = ("statDate", *DAILY_COUNTERS, "calledCount", *FLOW_TOTALS)
HOUR_POINT_FIELDS = ("statDate", "hour", "startTime", *HOUR_COUNTERS, "calledCount")


def day_point(day: DayHistory) -> dict[str, Any]:
    """A day of the history: its daily counters and its call totals at its end."""
    return {
        "statDate": day.day.isoformat(),
        **day.daily,
        "calledCount": day.daily["dailyCalledCount"],
        **day.totals_at_end,
    }


def hour_points(day: DayHistory, zone: Any) -> list[dict[str, Any]]:
    """Every hour of the day, zeros where nothing was counted, each with its start instant."""
    start = day_start(day.day, zone)
    label = day.day.isoformat()
    zeros = dict.fromkeys(HOUR_COUNTERS, 0)
    points = []
    for hour in range(hours_in(day.day, zone)):
        counters = day.hours.get(hour, zeros)
        moment = datetime.fromtimestamp(start + hour * 3600, UTC).astimezone(zone)
        points.append(
            {
                "statDate": label,
                "hour": hour,
                "startTime": moment.isoformat(),
                **counters,
                "calledCount": counters["dailyCalledCount"],
            }
        )
    return points
