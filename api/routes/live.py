"""GET /: the wallboard of one VDN; GET /counters: every counter of its campaigns and batches;
the JSON they read and the changes they follow, under /live/.

The wallboard (api/static/live.html) shows per campaign its progress, connect rate, 30-day
abandon rate against the VDN's limit, calls per minute over the last hour and ETA, with the
VDN's total and clock. It reads GET /live/wallboard/{vdnId}: the answers of the abandon-rate
(basis live) and pacing interfaces for the whole VDN, worked out by their own code
(api/routes/abandon_rate.py, pacing.py) from one read of the VDN's windows, and each live
campaign's calls in its last ``WALLBOARD_MINUTES`` minutes, as the progress interface reads them.

The counters page (api/static/counters.html) shows yesterday's daily counters next to today's:
GET /live/statistics/{vdnId} carries both days, read from the same keys as the statistics
interface (yesterday's day rows are kept for the retention). Yesterday's read is kept for
``YESTERDAY_SECONDS`` per VDN and process: it only changes by late events, and the endpoint has
no flow control, so a page left open costs one read a second.

The interfaces need an AK/SK signature, and a page in a browser could only make one by holding a
secret key. So the pages read same-origin endpoints of their own, without a signature, and all
exist only when ``live_page_enabled`` (ISALES_LIVE_PAGE_ENABLED) is on: off by default, on in
``isales-stats demo``. Switched on, anyone who reaches the API reads every VDN's counters and
decisions (read only, outside flow control): keep it to a trusted network, or behind a proxy
that authenticates. Switched off, / answers 404 in iSales' envelope, naming the interfaces of
the port, where their documentation is, and how to switch the page on.

Both pages follow the VDN's changes as Server-Sent Events (the push of api/push/, on the same
terms as the JSON: no signature, only when the page is on; each browser address counts as one
key for the subscriber caps, found as everywhere in the API: behind ISALES_TRUSTED_PROXIES, the
address they forwarded, so that one proxy's browsers are not all one address). When the stream
fails, they poll their JSON until the stream is back.

Each page is one HTML file with inline JavaScript (api/static/), no build step.
"""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from importlib.resources import files
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from isales_stats.api.auth import client_address
from isales_stats.api.decisions import DecisionsReaderDep
from isales_stats.api.dependencies import HubDep, ReaderDep, SettingsDep, one_reader
from isales_stats.api.errors import ErrorCode, ParameterError, error_response
from isales_stats.api.push.stream import last_event_id, open_stream
from isales_stats.api.routes import abandon_rate, pacing
from isales_stats.core.days import today_in
from isales_stats.core.events import MAX_VDN_ID, MIN_VDN_ID
from isales_stats.core.settings import Settings
from isales_stats.engine.decisions import DecisionsReader
from isales_stats.engine.progress import ProgressReader
from isales_stats.engine.reads import reads_together, run_read
from isales_stats.engine.statistics import StatisticsReader

ProgressReaderDep = Annotated[ProgressReader, Depends(one_reader(ProgressReader))]

LIVE_STATISTICS_PATH = "/live/statistics/{vdnId}"
LIVE_STREAM_PATH = "/live/stream/{vdnId}"
WALLBOARD_PATH = "/live/wallboard/{vdnId}"
COUNTERS_PAGE_PATH = "/counters"
_STATIC = files("isales_stats.api").joinpath("static")
PAGE = _STATIC.joinpath("live.html").read_bytes()
COUNTERS_PAGE = _STATIC.joinpath("counters.html").read_bytes()
# The wallboard's line of calls per minute: the last hour, as the progress interface answers it.
WALLBOARD_MINUTES = 60
OFF_MESSAGE = (
    "The live page is off: start the API with ISALES_LIVE_PAGE_ENABLED=true to serve it here "
    "(it shows every VDN's counters without a signature: trusted networks only)."
)
# ASCII decimal without leading zeros ("0001" is refused); the range is checked apart.
_VDN_ID = re.compile(r"[1-9][0-9]*")
_VDN_ID_MESSAGE = f"vdnId must be an integer from {MIN_VDN_ID} to {MAX_VDN_ID}"


YESTERDAY_SECONDS = 60.0


class YesterdayReads:
    """Yesterday's countDetail per VDN, read again once it is ``YESTERDAY_SECONDS`` old (or
    another day is yesterday)."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[float, date, list[dict[str, Any]]]] = {}

    async def detail(
        self, reader: StatisticsReader, vdn_id: int, yesterday: date
    ) -> list[dict[str, Any]]:
        kept = self._kept.get(vdn_id)
        now = time.monotonic()
        if kept is None or kept[1] != yesterday or now - kept[0] > YESTERDAY_SECONDS:
            if len(self._kept) >= MAX_VDN_ID:  # every VDN at most; a bound all the same
                self._kept.clear()
            kept = (now, yesterday, await reader.read_count_detail(vdn_id, yesterday))
            self._kept[vdn_id] = kept
        return kept[2]


def build_router(settings: Settings) -> APIRouter:
    """The pages and their JSON when the live page is on; else a / that says it is off."""
    router = APIRouter(tags=["live page"])
    if not settings.live_page_enabled:
        router.add_api_route("/", live_page_off, methods=["GET"], include_in_schema=False)
        return router
    yesterdays = YesterdayReads()

    async def live_statistics(vdnId: str, reader: ReaderDep, settings: SettingsDep) -> Response:
        """Today's and total counters of every campaign of the VDN, with their batches, and
        yesterday's daily counters."""
        return await live_body(vdnId, reader, settings, yesterdays)

    async def live_stream(vdnId: str, request: Request, hub: HubDep) -> Response:
        """The VDN's changes as Server-Sent Events (api/push/), for the page."""
        vdn_id = _checked_vdn_id(vdnId)
        address = client_address(request, request.app.state.trusted_proxies)
        request.state.client_address = address  # the access log's "client"
        return await open_stream(hub, vdn_id, None, f"live:{address}", last_event_id(request))

    async def live_wallboard(
        vdnId: str,
        decisions: DecisionsReaderDep,
        progress: ProgressReaderDep,
        settings: SettingsDep,
    ) -> Response:
        """The VDN's abandon rates, pacing and each campaign's calls per minute."""
        return await wallboard_body(vdnId, decisions, progress, settings)

    router.add_api_route("/", live_page, methods=["GET"], include_in_schema=False)
    router.add_api_route(
        COUNTERS_PAGE_PATH, counters_page, methods=["GET"], include_in_schema=False
    )
    router.add_api_route(
        LIVE_STREAM_PATH,
        live_stream,
        methods=["GET"],
        response_model=None,
        summary="The VDN's changes for the live page (no signature; ISALES_LIVE_PAGE_ENABLED)",
        responses={
            200: {"description": "text/event-stream, as the push interface sends it."},
            400: {"description": f"vdnId is not an integer from {MIN_VDN_ID} to {MAX_VDN_ID}."},
            503: {
                "description": "Redis is unreachable, or the process serves its most "
                "subscribers; try again."
            },
        },
    )
    router.add_api_route(
        LIVE_STATISTICS_PATH,
        live_statistics,
        methods=["GET"],
        response_model=None,
        summary="Counters of a VDN for the live page (no signature; ISALES_LIVE_PAGE_ENABLED)",
        responses={
            200: {
                "description": "vdnId, day (today in the VDN's zone) and countDetail; yesterday "
                "and yesterdayDetail, in which only the daily counters are yesterday's (its "
                "totals are today's, read up to a minute ago)."
            },
            400: {"description": f"vdnId is not an integer from {MIN_VDN_ID} to {MAX_VDN_ID}."},
            503: {"description": "Redis is unreachable; try again."},
        },
    )
    router.add_api_route(
        WALLBOARD_PATH,
        live_wallboard,
        methods=["GET"],
        response_model=None,
        summary="A VDN's abandon rates, pacing and calls per minute for the wallboard (no "
        "signature; ISALES_LIVE_PAGE_ENABLED)",
        responses={
            200: {
                "description": "vdnId; abandonRate and pacing, the data of the abandon-rate "
                "(basis live) and pacing interfaces for every live campaign of the VDN, from one "
                f"read; progress: minutes ({WALLBOARD_MINUTES}) and, per campaign, the calls of "
                "each of its last minutes, the current one last."
            },
            400: {"description": f"vdnId is not an integer from {MIN_VDN_ID} to {MAX_VDN_ID}."},
            503: {"description": "Redis is unreachable; try again."},
        },
    )
    return router


async def live_page() -> Response:
    """The wallboard: the campaigns of a VDN (?vdn=), read as they change."""
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})


async def counters_page() -> Response:
    """Every counter of a VDN's campaigns and batches (?vdn=), yesterday's beside today's."""
    return HTMLResponse(COUNTERS_PAGE, headers={"Cache-Control": "no-store"})


async def live_page_off(request: Request, settings: SettingsDep) -> Response:
    """404 in iSales' envelope: what this port serves, where its documentation is, and how to
    switch the live page on."""
    return error_response(404, ErrorCode.NOT_FOUND, front_door_message(request, settings))


def front_door_message(request: Request, settings: Settings) -> str:
    """What a first visit to / reads: the interfaces of this port and where /docs is (the
    operations port, api/operations.py: not this one)."""
    # The OpenAPI document's paths (built once per app): what /docs describes.
    paths = request.app.openapi()["paths"]
    served = [f"{method.upper()} {path}" for path, item in paths.items() for method in item]
    if settings.operations_port:
        docs = (
            f"their documentation is /docs on the operations port ({settings.operations_port}, "
            "ISALES_OPERATIONS_PORT), not on this one"
        )
    else:
        docs = (
            "their documentation (/docs) is off with the operations port (ISALES_OPERATIONS_PORT=0)"
        )
    return f"Nothing is served at /. This port serves {', '.join(served)}; {docs}. {OFF_MESSAGE}"


async def live_body(
    vdnId: str, reader: StatisticsReader, settings: Settings, yesterdays: YesterdayReads
) -> Response:
    """The live JSON of a VDN: today's read, and yesterday's as ``yesterdays`` keeps it."""
    vdn_id = _checked_vdn_id(vdnId)
    today = today_in(settings.time_zone_of(vdn_id))
    yesterday = today - timedelta(days=1)
    # Two reads, not one instant: yesterday's daily counters no longer change but for late
    # events.
    detail = await reader.read_count_detail(vdn_id, today)
    before = await yesterdays.detail(reader, vdn_id, yesterday)
    body = {
        "vdnId": vdn_id,
        "day": today.isoformat(),
        "countDetail": detail,
        "yesterday": yesterday.isoformat(),
        "yesterdayDetail": before,
    }
    return Response(
        orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def wallboard_body(
    vdnId: str, decisions: DecisionsReader, progress: ProgressReader, settings: Settings
) -> Response:
    """The wallboard's JSON: both interfaces' answers from one read of the VDN's windows (the
    same instant for both), then the last minutes of the campaigns it found, in one round trip."""
    vdn_id = _checked_vdn_id(vdnId)
    read = await run_read(decisions.redis, decisions.counts_read(vdn_id))
    campaign_ids = [campaign.campaign_id for campaign in read.campaigns]
    minutes = await run_read(
        progress.redis,
        reads_together(
            [
                progress.last_minutes_read(vdn_id, campaign_id, WALLBOARD_MINUTES)
                for campaign_id in campaign_ids
            ]
        ),
    )
    body = {
        "vdnId": vdn_id,
        "abandonRate": abandon_rate.answer(read, settings, vdn_id, "live"),
        "pacing": pacing.answer(read, settings, vdn_id),
        "progress": {
            "minutes": WALLBOARD_MINUTES,
            "campaigns": [
                {"campaignId": campaign_id, "calls": [minute.calls for minute in campaign]}
                for campaign_id, campaign in zip(campaign_ids, minutes, strict=True)
            ],
        },
    }
    return Response(
        orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def _checked_vdn_id(text: str) -> int:
    if not _is_vdn_id(text):
        raise ParameterError(ErrorCode.WRONG_VALUE, f"{_VDN_ID_MESSAGE}, got {text[:20]!r}")
    return int(text)


def _is_vdn_id(text: str) -> bool:
    # The length first: int() of a long text is slow, and refused past 4,300 digits.
    return (
        _VDN_ID.fullmatch(text) is not None
        and len(text) <= len(str(MAX_VDN_ID))
        and MIN_VDN_ID <= int(text) <= MAX_VDN_ID
    )
