"""GET /rest/isales/v1/openapi/campaigns/{vdnId}/failcategorystatistics: failures by failCode.

CC-iSales' exception statistics (docs/api.md, "Exception statistics"): per day of a range whose
ends are at most 30 days apart, a campaign's distinct failed calls (callStatus 5) by failCode,
counted by the counting script with the other counters (engine/count_events.lua). The same
checks as the statistics interface, in the same order (api/routes/statistics.py), with a
flow-control budget of its own.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from isales_stats.api.auth import authorize_vdn
from isales_stats.api.dependencies import (
    AdmissionDep,
    CallerDep,
    FailCategoryQueryDep,
    HistoryReaderDep,
    SettingsDep,
)
from isales_stats.api.errors import ErrorCode
from isales_stats.api.parameters import (
    openapi_day_range_parameters,
    requested_days,
    vdn_route,
)
from isales_stats.api.responses import DAY_RANGE_ERRORS, error_responses, success
from isales_stats.api.schemas import FailCategoryResponse
from isales_stats.core.interface import FAIL_CATEGORY_PATH

router = APIRouter(tags=["statistics"])

# Every 400 this interface answers, with the request that gets it (docs/api.md).
PARAMETER_ERRORS = [
    *DAY_RANGE_ERRORS,
    (
        ErrorCode.PARAMETER_ERROR,
        "unknown query parameter 'batchId'; the parameters are campaignId, startDate and endDate",
    ),
]
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "One entry per day of the range, ascending."},
    **error_responses(PARAMETER_ERRORS),
}


@router.get(
    vdn_route(FAIL_CATEGORY_PATH),
    response_model=FailCategoryResponse,
    responses=RESPONSES,
    summary="Failed outbound calls by failCode, per day",
    openapi_extra={"parameters": openapi_day_range_parameters(history=False)},
)
async def fail_category_statistics(
    request: Request,
    caller: CallerDep,
    query: FailCategoryQueryDep,
    admission: AdmissionDep,
    reader: HistoryReaderDep,
    settings: SettingsDep,
) -> Response:
    """A campaign's failed calls by failCode for each day from startDate to endDate (today in
    the VDN's zone when neither is given); a day without failures, or an unknown campaign,
    has ``{}``."""
    authorize_vdn(request, caller, query.vdn_id)
    days = requested_days(query, settings)
    gate = admission.gate(request, caller, query.vdn_id, interface="failcategorystatistics")
    fail_data = await reader.fail_data(query.vdn_id, query.campaign_id, days, gate=gate)
    return success(
        [
            {"statDate": day.isoformat(), "failData": codes}
            for day, codes in zip(days, fail_data, strict=True)
        ]
    )
