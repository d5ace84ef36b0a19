"""GET /rest/isales/v2/openapi/campaigns/{vdnId}/statistics/pacing: how far, how fast, how long.

Our extension (docs/api.md, "Pacing"): per campaign, per batch and over the campaigns answered,
the records finished and remaining, the calls and finished records per minute over the last 5,
15 and 60 minutes, the connect rate, the attempts per finished record, the time of the latest
call, a state (empty, notStarted, dialling, stalled, finished) and, while dialling, the span in
which the remaining records should be done at the fastest and slowest of those paces. Read from
the rolling windows (engine/decisions.py), worked out by isales_stats/core/decisions.py. The
same checks as the statistics interface, with a flow-control budget of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from isales_stats.api.decisions import SCOPE_BATCH, SCOPE_CAMPAIGN, DecisionsReaderDep, by_scope
from isales_stats.api.errors import ErrorCode
from isales_stats.api.interfaces import GuardedRead, ReadInterface
from isales_stats.api.parameters import StatisticsQuery
from isales_stats.api.responses import (
    BATCH_WITHOUT_CAMPAIGN,
    CAMPAIGN_TOO_LONG,
    MISSING_CONTENT_TYPE,
    success,
)
from isales_stats.api.schemas import Count, Success
from isales_stats.core.decisions import PACE_WINDOWS, Pacer, ScopeCounts
from isales_stats.core.interface import PACING_PATH
from isales_stats.core.settings import Settings
from isales_stats.core.windows import minute_start
from isales_stats.engine.decisions import DecisionCounts

router = APIRouter()

Percent = Annotated[float | None, Field(description="In percent, two decimals; null: no calls.")]


class PerMinute(BaseModel):
    model_config = ConfigDict(extra="forbid")

    last5: float = Field(description="Over the last 5 minutes (the current one included).")
    last15: float
    last60: float


class ConnectRate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    today: Percent
    life: Percent


class Eta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    earliest: str = Field(description="At the fastest of the three paces, ISO-8601.")
    latest: str = Field(description="At the slowest of them that finished any record.")


class Pace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    totalRecords: Count = Field(description="totalCount of the statistics.")
    finishedRecords: Count = Field(description="totalFinishCount of the statistics.")
    remainingRecords: Count = Field(description="totalRecords - finishedRecords, at least 0.")
    percentComplete: float | None = Field(
        description="finishedRecords / totalRecords in percent (at most 100), two decimals; "
        "null without records."
    )
    callsPerMinute: PerMinute = Field(description="Calls made per minute, two decimals.")
    finishedPerMinute: PerMinute = Field(description="Records finished per minute.")
    connectRate: ConnectRate = Field(description="Connected calls over calls made.")
    attemptsPerFinishedRecord: float | None = Field(
        description="totalCalledCount / totalFinishCount, two decimals; null: none finished."
    )
    lastCallAt: str | None = Field(
        description="The start of the latest call's minute (by its occurredAt), ISO-8601 in "
        "the VDN's zone; null: no call."
    )
    state: Literal["empty", "notStarted", "dialling", "stalled", "finished"]
    eta: Eta | None
    etaReason: str | None = Field(
        description="Why eta is null: finished, not started, stalled, or no record finished "
        "in the last 60 minutes."
    )


class PaceBatch(Pace):
    batchId: str


class PaceCampaign(Pace):
    campaignId: str
    batches: list[PaceBatch]


class Pacing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vdnId: int
    timeZone: str
    now: str = Field(description="When the windows were summed, ISO-8601 in the VDN's zone.")
    stallMinutes: int = Field(description="ISALES_STALL_MINUTES: a longer silence is stalled.")
    total: Pace = Field(description="The campaigns answered, added up.")
    campaigns: list[PaceCampaign]


class PacingResponse(Success):
    data: Pacing


INTERFACE = ReadInterface(
    path=PACING_PATH,
    summary="Records done and left, calls and records per minute, state and ETA (an extension)",
    budget="pacing",
    parameters=(SCOPE_CAMPAIGN, SCOPE_BATCH),
    query=StatisticsQuery,
    errors=(
        BATCH_WITHOUT_CAMPAIGN,
        (ErrorCode.TOO_MANY_PARAMETERS, "campaignId is given 2 times; give it at most once"),
        (
            ErrorCode.PARAMETER_ERROR,
            "unknown query parameter 'basis'; the parameters are campaignId and batchId",
        ),
        CAMPAIGN_TOO_LONG,
        MISSING_CONTENT_TYPE,
    ),
    answer="The campaigns asked for, each with its batches, and their total.",
    response_model=PacingResponse,
)


def _moment(epoch_seconds: int, zone: tzinfo) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).astimezone(zone).isoformat()


@lru_cache(maxsize=1024)
def _minute(minute: int, zone: tzinfo) -> str:
    """A minute's start in ``zone``: the scopes of a VDN share a few latest minutes."""
    return minute_start(minute, zone).isoformat()


# The per-minute figures' names in the answer, in PACE_WINDOWS' order.
_PER_MINUTE = tuple(f"last{size}" for size in PACE_WINDOWS)


@INTERFACE.route(router)
async def pacing(
    guarded: Annotated[GuardedRead[StatisticsQuery], Depends(INTERFACE.guard)],
    reader: DecisionsReaderDep,
) -> Response:
    """How far each scope is, how fast it goes and when it may be done."""
    query = guarded.query
    read = await guarded.read(reader.counts_read(query.vdn_id, query.campaign_id, query.batch_id))
    return success(answer(read, guarded.settings, query.vdn_id))


def answer(read: DecisionCounts, settings: Settings, vdn_id: int) -> dict[str, Any]:
    """The answer's ``data`` for what was read: also the wallboard's (api/routes/live.py)."""
    zone = settings.time_zone_of(vdn_id)
    stall_minutes = settings.stall_minutes
    now_ms = read.now_ms

    pacer = Pacer(now_ms, stall_minutes)
    # The pacer shares a per-minute dict among the scopes with the same window counts; so is
    # each answer's, made once per distinct set of rates rather than per scope.
    per_minute_answers: dict[tuple[float, ...], dict[str, float]] = {}

    def per_minute(rates: dict[int, float]) -> dict[str, float]:
        key = tuple(rates.values())
        answered = per_minute_answers.get(key)
        if answered is None:
            answered = per_minute_answers[key] = dict(zip(_PER_MINUTE, key, strict=True))
        return answered

    def figures(counts: ScopeCounts) -> dict[str, Any]:
        paced = pacer.pace(counts)
        last, eta = paced.last_call_minute, paced.eta
        return {
            "totalRecords": paced.total_records,
            "finishedRecords": paced.finished_records,
            "remainingRecords": paced.remaining_records,
            "percentComplete": paced.percent_complete,
            "callsPerMinute": per_minute(paced.calls_per_minute),
            "finishedPerMinute": per_minute(paced.finished_per_minute),
            "connectRate": {"today": paced.connect_rate_today, "life": paced.connect_rate_life},
            "attemptsPerFinishedRecord": paced.attempts_per_finished_record,
            "lastCallAt": None if last is None else _minute(last, zone),
            "state": paced.state,
            "eta": None
            if eta is None
            else {"earliest": _moment(eta[0], zone), "latest": _moment(eta[1], zone)},
            "etaReason": paced.eta_reason,
        }

    return {
        "vdnId": vdn_id,
        "timeZone": settings.time_zone_name_of(vdn_id),
        "now": _moment(now_ms // 1000, zone),
        "stallMinutes": stall_minutes,
        **by_scope(read, figures),
    }
