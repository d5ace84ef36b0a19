"""GET /rest/isales/v1/openapi/campaigns/{vdnId}/failcategorystatistics: failures by failCode.

CC-iSales' exception statistics (docs/api.md, "Exception statistics"): per day of a range whose
ends are at most 30 days apart, a campaign's distinct failed calls (callStatus 5) by failCode,
counted by the counting script with the other counters (engine/count_events/). The same
checks as the statistics interface, in the same order (api/routes/statistics.py), with a
flow-control budget of its own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from isales_stats.api.dependencies import HistoryReaderDep
from isales_stats.api.errors import ErrorCode
from isales_stats.api.interfaces import GuardedRead, ReadInterface
from isales_stats.api.parameters import (
    END_DATE,
    MANDATORY_CAMPAIGN,
    START_DATE,
    DayRangeQuery,
    requested_days,
)
from isales_stats.api.responses import DAY_RANGE_ERRORS, success
from isales_stats.api.schemas import FailCategoryResponse
from isales_stats.core.interface import FAIL_CATEGORY_PATH

router = APIRouter()

INTERFACE = ReadInterface(
    path=FAIL_CATEGORY_PATH,
    summary="Failed outbound calls by failCode, per day",
    budget="failcategorystatistics",
    parameters=(MANDATORY_CAMPAIGN, START_DATE, END_DATE),
    query=DayRangeQuery,
    # Every 400 this interface answers, with the request that gets it (docs/api.md).
    errors=(
        *DAY_RANGE_ERRORS,
        (
            ErrorCode.PARAMETER_ERROR,
            "unknown query parameter 'batchId'; the parameters are campaignId, startDate and "
            "endDate",
        ),
    ),
    answer="One entry per day of the range, ascending.",
    response_model=FailCategoryResponse,
)


@INTERFACE.route(router)
async def fail_category_statistics(
    guarded: Annotated[GuardedRead[DayRangeQuery], Depends(INTERFACE.guard)],
    reader: HistoryReaderDep,
) -> Response:
    """A campaign's failed calls by failCode for each day from startDate to endDate (today in
    the VDN's zone when neither is given); a day without failures, or an unknown campaign,
    has ``{}``."""
    query = guarded.query
    days = requested_days(query, guarded.settings)
    fail_data = await guarded.read(reader.fail_data_read(query.vdn_id, query.campaign_id, days))
    return success(
        [
            {"statDate": day.isoformat(), "failData": codes}
            for day, codes in zip(days, fail_data, strict=True)
        ]
    )
