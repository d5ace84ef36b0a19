"""The bodies the API answers with, as pydantic models: they make the OpenAPI document.

The statistics route answers with the JSON the reader writes (engine/statistics.py), not
validated again here (a whole VDN is thousands of numbers; validating them on every request
would cost more than reading them); ``tests/test_api_statistics.py`` checks that those bodies
satisfy these models, and the schemathesis run checks every answer against the document built
from them.
"""

from __future__ import annotations

from typing import Annotated

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
