"""GET /rest/isales/v2/openapi/campaigns/{vdnId}/statistics/progress: a campaign, minute by minute.

Our extension (docs/api.md, "Progress"): the calls made, the calls connected and the records
finished in each of a campaign's last minutes (60 unless ``minutes`` says up to 1440), the
current minute last with what it has so far, zeros where nothing was counted. Minutes are those
in which the worker counted the events (engine/progress.py), not the events' own times: this is
the campaign's pace now, for a wallboard; history (statistics/history) answers by the events'
times. The same checks as the statistics interface, with a flow-control budget of its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from isales_stats.api.dependencies import one_reader
from isales_stats.api.errors import ErrorCode
from isales_stats.api.interfaces import GuardedRead, ReadInterface
from isales_stats.api.parameters import MANDATORY_CAMPAIGN, WholeNumber
from isales_stats.api.responses import (
    CAMPAIGN_MISSING,
    CAMPAIGN_TOO_LONG,
    MISSING_CONTENT_TYPE,
    success,
)
from isales_stats.api.schemas import Count, Success
from isales_stats.core.interface import PROGRESS_PATH
from isales_stats.engine.progress import ProgressReader

router = APIRouter()

DEFAULT_MINUTES = 60
# A day: the progress stream keeps about two days of busy minutes.
MAX_MINUTES = 1440


@dataclass(frozen=True, slots=True)
class ProgressQuery:
    vdn_id: int
    campaign_id: str
    minutes: int = DEFAULT_MINUTES


class MinutePoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    startTime: str = Field(description="When the minute starts, ISO-8601 with the VDN's offset.")
    calls: Count = Field(description="Calls made (counted in that minute).")
    connects: Count = Field(description="Connected calls.")
    finished: Count = Field(description="Records finished.")


class Progress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vdnId: int
    campaignId: str
    minutes: int = Field(description="How many minutes: points holds one per minute.")
    timeZone: str = Field(description="The VDN's zone, whose offset startTime carries.")
    points: list[MinutePoint]


class ProgressResponse(Success):
    data: Progress


INTERFACE = ReadInterface(
    path=PROGRESS_PATH,
    summary="A campaign's calls, connects and finished records per minute (an extension)",
    budget="progress",
    parameters=(
        dataclasses.replace(
            MANDATORY_CAMPAIGN,
            description="The campaign (mandatory). No control characters, '{' or '}'; at most "
            "64. An unknown campaign answers every minute with nothing counted.",
        ),
        WholeNumber(
            "minutes",
            "minutes",
            16,
            f"How many minutes up to now, the current one included: 1 to {MAX_MINUTES} "
            f"(empty or absent: {DEFAULT_MINUTES}).",
            minimum=1,
            maximum=MAX_MINUTES,
            default=DEFAULT_MINUTES,
        ),
    ),
    query=ProgressQuery,
    errors=(
        CAMPAIGN_MISSING,
        (ErrorCode.WRONG_TYPE, "minutes must be an integer, got 'an hour'"),
        (ErrorCode.WRONG_VALUE, f"minutes must be from 1 to {MAX_MINUTES}, got '1441'"),
        CAMPAIGN_TOO_LONG,
        (
            ErrorCode.PARAMETER_ERROR,
            "unknown query parameter 'batchId'; the parameters are campaignId and minutes",
        ),
        MISSING_CONTENT_TYPE,
    ),
    answer="Every minute asked for, ascending, the current one last.",
    response_model=ProgressResponse,
)


@INTERFACE.route(router)
async def campaign_progress(
    guarded: Annotated[GuardedRead[ProgressQuery], Depends(INTERFACE.guard)],
    reader: Annotated[ProgressReader, Depends(one_reader(ProgressReader))],
) -> Response:
    """A campaign's calls, connected calls and finished records in each of its last minutes."""
    query, settings = guarded.query, guarded.settings
    zone = settings.time_zone_of(query.vdn_id)
    minutes = await guarded.read(
        reader.last_minutes_read(query.vdn_id, query.campaign_id, query.minutes)
    )
    return success(
        {
            "vdnId": query.vdn_id,
            "campaignId": query.campaign_id,
            "minutes": query.minutes,
            "timeZone": settings.time_zone_name_of(query.vdn_id),
            "points": [
                {
                    "startTime": datetime.fromtimestamp(minute.start_ms / 1000, UTC)
                    .astimezone(zone)
                    .isoformat(),
                    "calls": minute.calls,
                    "connects": minute.connects,
                    "finished": minute.finished,
                }
                for minute in minutes
            ],
        }
    )
