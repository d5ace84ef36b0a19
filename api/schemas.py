"""The bodies the API answers with, as pydantic models: they make the OpenAPI document.

The statistics route answers with the JSON the reader writes (engine/statistics.py), not
validated again here (a whole VDN is thousands of numbers; validating them on every request
would cost more than reading them); ``tests/test_api_statistics.py`` checks that those bodies
satisfy these models, and the schemathesis run checks every answer against the document built
from them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from isales_stats.api.errors import ErrorCode

Count = Annotated[int, Field(ge=0)]


class Counters(BaseModel):
    """The eleven counters of a campaign or a batch (descriptions from the iSales interface)."""

    model_config = ConfigDict(extra="forbid")

    unCallCount: Count = Field(description="Remaining unmade calls.")
    calledCount: Count = Field(
        description="Made calls on the current day (same as dailyCalledCount)."
    )
    finishCount: Count = Field(description="Completed calls (same as totalFinishCount).")
    totalCalledCount: Count = Field(description="Made calls since the campaign started.")
    totalCallSucc: Count = Field(description="Connected calls since the campaign started.")
    totalFinishCount: Count = Field(description="Completed calls since the campaign started.")
    totalCount: Count = Field(description="Calls of the campaign: completed, ongoing and unmade.")
    dailyCalledCount: Count = Field(description="Made calls on the current day.")
    dailyCallSucc: Count = Field(description="Connected calls on the current day.")
    dailyFinishCount: Count = Field(description="Completed calls on the current day.")
    dailyCount: Count = Field(
        description="Calls of the current day: completed, ongoing and unmade."
    )


class BatchStatistics(Counters):
    """One batch (iSales' customField) of a campaign."""

    batchId: str = Field(description="The batch, as imported in customField.")


class CampaignStatistics(Counters):
    """One campaign and its batches, ordered by batchId."""

    campaignId: str = Field(description="The campaign (outbound call data ID).")
    batchDetail: list[BatchStatistics]


class StatisticsResponse(BaseModel):
    """The campaigns asked for, ordered by campaignId."""

    model_config = ConfigDict(extra="forbid")

    countDetail: list[CampaignStatistics]


class ErrorEnvelope(BaseModel):
    """Every error: the iSales envelope, the return* pair mirroring the result* pair."""

    model_config = ConfigDict(extra="forbid")

    resultCode: ErrorCode
    resultDesc: str
    returnCode: ErrorCode
    returnDesc: str


class ProbeStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str


SUCCESS_CODE = "0200000"
SUCCESS_MESSAGE = "Query Success!"  # iSales' own words


class Success(BaseModel):
    """The iSales envelope of an answer with data."""

    model_config = ConfigDict(extra="forbid")

    resultCode: Literal["0200000"]
    resultDesc: str
    returnCode: Literal["0200000"]
    returnDesc: str


class FailDay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    statDate: str = Field(description="The day, yyyy-MM-dd in the VDN's zone.")
    failData: dict[str, Count] = Field(
        description="failCode -> the distinct failed calls (callStatus 5) that day with it; "
        '"" for failed calls that gave no failCode. {} when none failed.'
    )


class FailCategoryResponse(Success):
    """One entry per day of the range, ascending."""

    data: list[FailDay]


class DailyPoint(BaseModel):
    """The daily counters of a day, or of an hour of it, named as in the statistics body."""

    model_config = ConfigDict(extra="forbid")

    statDate: str = Field(description="The day, yyyy-MM-dd in the VDN's zone.")
    dailyCalledCount: Count = Field(description="Calls made (that day, or in that hour).")
    dailyCallSucc: Count = Field(description="Connected calls.")
    dailyFinishCount: Count = Field(
        description="Records finished: in an hour, those whose first final call of the day fell "
        "in it."
    )
    dailyCount: Count = Field(
        description="Records imported or called: in an hour, those whose first event of the day "
        "fell in it (so the hours of a day add up to the day)."
    )
    calledCount: Count = Field(description="The same as dailyCalledCount, as in statistics.")


class DayPoint(DailyPoint):
    totalCalledCount: Count = Field(description="Calls made by the end of the day (today: now).")
    totalCallSucc: Count = Field(description="Connected calls by the end of the day (today: now).")


class HourPoint(DailyPoint):
    hour: Annotated[int, Field(ge=0, le=24)] = Field(
        description="Hours since the day's start: 0..22 on a 23-hour day, 0..24 on a 25-hour one."
    )
    startTime: str = Field(description="When the hour starts, ISO-8601 with the zone's offset.")
    abandonedCalls: Count = Field(
        description="Calls answered and abandoned before an agent took them: failed calls whose "
        "failCode is 00701 (queue abandoned), 00702 (queue timed out) or 01046 (no agent)."
    )


class History(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vdnId: int
    campaignId: str
    batchId: str | None = Field(description="The batch read, or null for the whole campaign.")
    interval: Literal["day", "hour"]
    timeZone: str = Field(description="The VDN's zone, in which days and hours are counted.")
    points: list[DayPoint] | list[HourPoint]


class HistoryResponse(Success):
    data: History
