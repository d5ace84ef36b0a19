"""GET /rest/isales/v2/openapi/campaigns/{vdnId}/statistics/abandonrate: against the limit.

Our extension (docs/api.md, "Abandon rate"): per campaign, per batch and over the campaigns
answered, the calls a person answered and no agent took (failCodes ISALES_ABANDON_FAIL_CODES)
over a denominator, today, over the rolling 24 hours, over the rolling 30 days (the US rule's
period) and over the scope's life, each with its status against the VDN's limit. Read from the
rolling windows the counting script keeps (engine/decisions.py; docs/adr/0008-rolling-windows.md),
worked out by isales_stats/core/decisions.py. The same checks as the statistics interface, with
a flow-control budget of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from isales_stats.api.decisions import SCOPE_BATCH, SCOPE_CAMPAIGN, DecisionsReaderDep, by_scope
from isales_stats.api.errors import ErrorCode
from isales_stats.api.interfaces import GuardedRead, ReadInterface
from isales_stats.api.parameters import Word
from isales_stats.api.responses import (
    BATCH_WITHOUT_CAMPAIGN,
    CAMPAIGN_TOO_LONG,
    MISSING_CONTENT_TYPE,
    success,
)
from isales_stats.api.schemas import Count, Success
from isales_stats.core import decisions
from isales_stats.core.decisions import (
    BASES,
    AbandonLimit,
    Basis,
    ScopeCounts,
    abandon_counts,
    rate_of,
)
from isales_stats.core.interface import ABANDON_RATE_PATH
from isales_stats.core.settings import Settings
from isales_stats.engine.decisions import DecisionCounts

router = APIRouter()


@dataclass(frozen=True, slots=True)
class AbandonRateQuery:
    vdn_id: int
    campaign_id: str | None = None
    batch_id: str | None = None
    basis: Basis = "live"


class AbandonWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    abandoned: Count = Field(description="Calls a person answered and no agent took.")
    denominator: Count = Field(
        description="live: connected plus abandoned calls; all: every call made."
    )
    ratePercent: float | None = Field(
        description="abandoned / denominator in percent, to two decimals; null when the "
        "denominator is 0."
    )
    status: Literal["ok", "warning", "over"] = Field(
        description="over: above limitPercent; warning: from warningPercent on; compared on "
        "the exact fraction, not on the rounded rate."
    )


class AbandonWindows(BaseModel):
    model_config = ConfigDict(extra="forbid")

    today: AbandonWindow = Field(description="Today so far, in the VDN's zone.")
    rolling24h: AbandonWindow = Field(
        description="The current hour so far and the 23 before it (elapsed hours)."
    )
    rolling30d: AbandonWindow = Field(
        description="Today so far and the 29 days before it; a day leaves at the VDN's midnight."
    )
    life: AbandonWindow = Field(description="Since the scope's first call.")


class AbandonBatch(AbandonWindows):
    batchId: str


class AbandonCampaign(AbandonWindows):
    campaignId: str
    batches: list[AbandonBatch]


class AbandonRate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vdnId: int
    timeZone: str = Field(description="The VDN's zone: its days and hours.")
    basis: Literal["live", "all"]
    limitPercent: float = Field(description="The VDN's limit (ISALES_VDN_ABANDON_LIMITS).")
    warningPercent: float = Field(
        description="limitPercent times ISALES_ABANDON_WARNING_FRACTION, to two decimals."
    )
    total: AbandonWindows = Field(description="The campaigns answered, added up.")
    campaigns: list[AbandonCampaign]


class AbandonRateResponse(Success):
    data: AbandonRate


BASIS = Word(
    "basis",
    "basis",
    # Room for any word, so that a wrong one is told the bases, not a length.
    16,
    "live (the default, also when empty): the denominator is the calls a person answered, "
    "connected or abandoned (the US and UK rules); all: every call made.",
    choices=BASES,
    default="live",
)

INTERFACE = ReadInterface(
    path=ABANDON_RATE_PATH,
    summary="Abandoned calls against the VDN's limit: today, 24 hours, 30 days, life (an "
    "extension)",
    budget="abandonrate",
    parameters=(SCOPE_CAMPAIGN, SCOPE_BATCH, BASIS),
    query=AbandonRateQuery,
    errors=(
        (ErrorCode.WRONG_VALUE, "basis must be live or all, got 'answered'"),
        BATCH_WITHOUT_CAMPAIGN,
        (ErrorCode.TOO_MANY_PARAMETERS, "basis is given 2 times; give it at most once"),
        (
            ErrorCode.PARAMETER_ERROR,
            "unknown query parameter 'minutes'; the parameters are campaignId, batchId and basis",
        ),
        CAMPAIGN_TOO_LONG,
        MISSING_CONTENT_TYPE,
    ),
    answer="The campaigns asked for, each with its batches, and their total.",
    response_model=AbandonRateResponse,
)


def _window(rate: decisions.AbandonRate) -> dict[str, Any]:
    return {
        "abandoned": rate.abandoned,
        "denominator": rate.denominator,
        "ratePercent": rate.rate_percent,
        "status": rate.status,
    }


@INTERFACE.route(router)
async def abandon_rate(
    guarded: Annotated[GuardedRead[AbandonRateQuery], Depends(INTERFACE.guard)],
    reader: DecisionsReaderDep,
) -> Response:
    """Abandoned calls over the calls answered (or made), by window, against the limit."""
    query = guarded.query
    read = await guarded.read(reader.counts_read(query.vdn_id, query.campaign_id, query.batch_id))
    return success(answer(read, guarded.settings, query.vdn_id, query.basis))


def answer(read: DecisionCounts, settings: Settings, vdn_id: int, basis: Basis) -> dict[str, Any]:
    """The answer's ``data`` for what was read: also the wallboard's (api/routes/live.py)."""
    limit = AbandonLimit(settings.abandon_limit_of(vdn_id), settings.abandon_warning_fraction)

    # A whole VDN answers thousands of windows but few distinct (abandoned, denominator) pairs,
    # and a window's answer follows from its pair alone: each is worked out once per answer and
    # its dict shared by the windows that have it (the answer is only serialized).
    answered: dict[tuple[int, int], dict[str, Any]] = {}

    def windows(counts: ScopeCounts) -> dict[str, Any]:
        figures = {}
        for name, abandoned, denominator in abandon_counts(counts, basis):
            window = answered.get((abandoned, denominator))
            if window is None:
                window = _window(rate_of(abandoned, denominator, limit))
                answered[abandoned, denominator] = window
            figures[name] = window
        return figures

    return {
        "vdnId": vdn_id,
        "timeZone": settings.time_zone_name_of(vdn_id),
        "basis": basis,
        "limitPercent": limit.limit_percent,
        "warningPercent": limit.warning_percent,
        **by_scope(read, windows),
    }
