"""GET /: a live page of one VDN's counters; GET /live/stream/{vdnId}: the changes it follows;
GET /live/statistics/{vdnId}: the JSON it polls when the stream fails.

The page shows yesterday's daily counters next to today's: the JSON carries both days, read from
the same keys as the statistics interface (yesterday's day rows are kept for the retention).
Yesterday's read is kept for ``YESTERDAY_SECONDS`` per VDN and process: it only changes by late
events, and the endpoint has no flow control, so a page left open costs one read a second.

The statistics interface needs an AK/SK signature, and a page in a browser could only make one
by holding a secret key. So the page reads a same-origin endpoint of its own, without a
signature, and both exist only when ``live_page_enabled`` (ISALES_LIVE_PAGE_ENABLED) is on: off
by default, on in ``isales-stats demo``. Switched on, anyone who reaches the API reads every
VDN's counters (read only, outside flow control): keep it to a trusted network, or behind a proxy
that authenticates. Switched off, / answers 404 in iSales' envelope, naming the interfaces of
the port, where their documentation is, and how to switch the page on.

The page follows the VDN's changes as Server-Sent Events (the push of api/push/, on the same
terms as the JSON: no signature, only when the page is on; each browser address counts as one
key for the subscriber caps, found as everywhere in the API: behind ISALES_TRUSTED_PROXIES, the
address they forwarded, so that one proxy's browsers are not all one address). When the stream
fails, it polls the JSON until the stream is back.

The page is one HTML file with inline JavaScript (api/static/live.html), no build step.
"""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from importlib.resources import files
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from isales_stats.api.auth import client_address
from isales_stats.api.dependencies import HubDep, ReaderDep, SettingsDep
from isales_stats.api.errors import ErrorCode, ParameterError, error_response
from isales_stats.api.push.stream import last_event_id, open_stream
from isales_stats.core.days import today_in
from isales_stats.core.events import MAX_VDN_ID, MIN_VDN_ID
from isales_stats.core.settings import Settings
from isales_stats.engine.statistics import StatisticsReader

LIVE_STATISTICS_PATH = "/live/statistics/{vdnId}"
LIVE_STREAM_PATH = "/live/stream/{vdnId}"
PAGE = files("isales_stats.api").joinpath("static", "live.html").read_bytes()
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
    """The page and its JSON when the live page is on; else a / that says it is off."""
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

    router.add_api_route("/", live_page, methods=["GET"], include_in_schema=False)
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
    return router


async def live_page() -> Response:
    """The live page: campaigns and batches of a VDN (?vdn=), refreshed every second."""
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})


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
