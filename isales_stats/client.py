"""A small client of the statistics API that signs its requests (auth-v2 AK/SK).

    with StatisticsClient("http://127.0.0.1:8000", access_key, secret_key) as client:
        campaigns = client.count_detail(1, campaign_id="1001")
        failures = client.fail_categories(1, "1001", date(2026, 12, 1), date(2026, 12, 6))
        hours = client.history(1, "1001", interval="hour")
        minutes = client.progress(1, "1001", minutes=30)
        rates = client.abandon_rate(1, basis="all")
        paces = client.pacing(1, "1001")
        exported = client.export(1, "hours.csv", history=True, interval="hour")

    async for change in watch(url, 1, access_key=access_key, secret_key=secret_key):
        print(change.campaign_id, change.counters["totalCalledCount"])

``AkSkAuth`` is the signer on its own, for any httpx client: it signs ``host`` and
``content-type`` (setting the JSON content type iSales requires when the request has none), the
path, the query and the body, at the moment of sending.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

# Re-exported: callers of the client build their own requests with them too.
from isales_stats.core.interface import ABANDON_RATE_PATH as ABANDON_RATE_PATH
from isales_stats.core.interface import CONTENT_TYPE as CONTENT_TYPE
from isales_stats.core.interface import FAIL_CATEGORY_PATH as FAIL_CATEGORY_PATH
from isales_stats.core.interface import HISTORY_EXPORT_PATH as HISTORY_EXPORT_PATH
from isales_stats.core.interface import HISTORY_PATH as HISTORY_PATH
from isales_stats.core.interface import PACING_PATH as PACING_PATH
from isales_stats.core.interface import PROGRESS_PATH as PROGRESS_PATH
from isales_stats.core.interface import STATISTICS_EXPORT_PATH as STATISTICS_EXPORT_PATH
from isales_stats.core.interface import STATISTICS_PATH as STATISTICS_PATH
from isales_stats.core.interface import STREAM_PATH as STREAM_PATH
from isales_stats.core.interface import parse_change_id
from isales_stats.core.signing import sign_request
from isales_stats.core.webhooks import WEBHOOKS_PATH as WEBHOOKS_PATH

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class DistinctMoments:
    """A clock whose readings are at least a millisecond apart.

    The API accepts a signature once (api/admission.py), and the signature's stamp has
    millisecond precision: the same request signed twice within one millisecond would be one
    signature, and the second refused as a replay. Above 1,000 requests a second the stamps run
    ahead of the clock, by at most the API's allowance for skew (60 s) before it refuses them.
    """

    def __init__(self, clock: Clock = _now) -> None:
        self.clock = clock
        self._last: datetime | None = None

    def __call__(self) -> datetime:
        now = self.clock()
        moment = now.replace(microsecond=now.microsecond // 1000 * 1000)  # what the stamp keeps
        if self._last is not None and moment <= self._last:
            moment = self._last + timedelta(milliseconds=1)
        self._last = moment
        return moment


class AkSkAuth(httpx.Auth):
    """Adds ``Authorization: auth-v2/...`` to every request, signed with one AK/SK pair (and a
    stamp of its own for each: ``DistinctMoments``)."""

    def __init__(self, access_key: str, secret_key: str, clock: Clock = _now) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.clock = DistinctMoments(clock)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sign(request, self.access_key, self.secret_key, self.clock())
        yield request


def signer(access_key: str | None, secret_key: str | None, clock: Clock = _now) -> AkSkAuth | None:
    """The signer of a client given both keys, or None (unsigned) given neither."""
    if bool(access_key) != bool(secret_key):
        raise ValueError("give both an access key and a secret key, or neither")
    return AkSkAuth(access_key, secret_key, clock) if access_key and secret_key else None


def sign(request: httpx.Request, access_key: str, secret_key: str, moment: datetime) -> None:
    """Sign ``request`` in place as sent at ``moment``."""
    request.headers.setdefault("Content-Type", CONTENT_TYPE)
    request.headers["Authorization"] = sign_request(
        access_key=access_key,
        secret_key=secret_key,
        method=request.method,
        # httpx keeps both decoded; the server decodes what it receives the same way.
        path=request.url.path,
        query=request.url.params.multi_items(),
        headers=request.headers,
        body=request.content,
        moment=moment,
    )


class StatisticsApiError(Exception):
    """The API answered something other than 200; ``result_code`` is the iSales code."""

    def __init__(self, status: int, result_code: str, description: str) -> None:
        super().__init__(f"HTTP {status} {result_code}: {description}")
        self.status = status
        self.result_code = result_code
        self.description = description


class StatisticsClient:
    """Calls ``GET .../campaigns/{vdnId}/statistics`` and its siblings (failcategorystatistics,
    statistics/history, statistics/progress); signs when given an AK and an SK."""

    def __init__(
        self,
        base_url: str,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        timeout: float = 10.0,
        clock: Clock = _now,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.auth = signer(access_key, secret_key, clock)
        self.clock = clock
        self._http = httpx.Client(
            base_url=base_url,
            auth=self.auth,
            headers={"Content-Type": CONTENT_TYPE},
            timeout=timeout,
            transport=transport,
        )

    def build_request(
        self, vdn_id: int, campaign_id: str | None = None, batch_id: str | None = None
    ) -> httpx.Request:
        """The unsigned request for these parameters (absent ones are left out of the query)."""
        params = {
            name: value
            for name, value in (("campaignId", campaign_id), ("batchId", batch_id))
            if value is not None
        }
        return self._http.build_request("GET", STATISTICS_PATH.format(vdn_id=vdn_id), params=params)

    def build_fail_category_request(
        self, vdn_id: int, campaign_id: str, start: date | None = None, end: date | None = None
    ) -> httpx.Request:
        """The unsigned failcategorystatistics request (no dates: today)."""
        params = {"campaignId": campaign_id, **_dates(start, end)}
        return self._http.build_request(
            "GET", FAIL_CATEGORY_PATH.format(vdn_id=vdn_id), params=params
        )

    def build_history_request(
        self,
        vdn_id: int,
        campaign_id: str,
        batch_id: str | None = None,
        start: date | None = None,
        end: date | None = None,
        interval: str = "day",
    ) -> httpx.Request:
        """The unsigned history request (no dates: today; interval "day" or "hour")."""
        params = {"campaignId": campaign_id, **_dates(start, end), "interval": interval}
        if batch_id is not None:
            params["batchId"] = batch_id
        return self._http.build_request("GET", HISTORY_PATH.format(vdn_id=vdn_id), params=params)

    def build_progress_request(
        self, vdn_id: int, campaign_id: str, minutes: int | None = None
    ) -> httpx.Request:
        """The unsigned progress request (no minutes: the API's default, 60)."""
        params: dict[str, str | int] = {"campaignId": campaign_id}
        if minutes is not None:
            params["minutes"] = minutes
        return self._http.build_request("GET", PROGRESS_PATH.format(vdn_id=vdn_id), params=params)

    def build_abandon_rate_request(
        self,
        vdn_id: int,
        campaign_id: str | None = None,
        batch_id: str | None = None,
        basis: str = "live",
    ) -> httpx.Request:
        """The unsigned abandon-rate request (every campaign without ``campaign_id``; basis
        "live", the API's default, or "all")."""
        params = _scope(campaign_id, batch_id)
        if basis != "live":
            params["basis"] = basis
        path = ABANDON_RATE_PATH.format(vdn_id=vdn_id)
        return self._http.build_request("GET", path, params=params)

    def build_pacing_request(
        self, vdn_id: int, campaign_id: str | None = None, batch_id: str | None = None
    ) -> httpx.Request:
        """The unsigned pacing request (every campaign without ``campaign_id``)."""
        path = PACING_PATH.format(vdn_id=vdn_id)
        return self._http.build_request("GET", path, params=_scope(campaign_id, batch_id))

    def send(self, request: httpx.Request) -> httpx.Response:
        """Any request built above, signed as it goes; the raw response, whatever its status."""
        return self._http.send(request)

    def get(
        self, vdn_id: int, campaign_id: str | None = None, batch_id: str | None = None
    ) -> httpx.Response:
        """The raw response, whatever its status."""
        return self.send(self.build_request(vdn_id, campaign_id, batch_id))

    def count_detail(
        self, vdn_id: int, campaign_id: str | None = None, batch_id: str | None = None
    ) -> list[dict[str, Any]]:
        """``countDetail`` of the answer; ``StatisticsApiError`` on anything but a 200."""
        detail: list[dict[str, Any]] = _body(self.get(vdn_id, campaign_id, batch_id))["countDetail"]
        return detail

    def fail_categories(
        self, vdn_id: int, campaign_id: str, start: date | None = None, end: date | None = None
    ) -> list[dict[str, Any]]:
        """``data`` of failcategorystatistics: per day, ``statDate`` and ``failData``."""
        request = self.build_fail_category_request(vdn_id, campaign_id, start, end)
        data: list[dict[str, Any]] = _body(self.send(request))["data"]
        return data

    def history(
        self,
        vdn_id: int,
        campaign_id: str,
        batch_id: str | None = None,
        start: date | None = None,
        end: date | None = None,
        interval: str = "day",
    ) -> list[dict[str, Any]]:
        """The ``points`` of the history: per day (or hour), its counters."""
        request = self.build_history_request(vdn_id, campaign_id, batch_id, start, end, interval)
        points: list[dict[str, Any]] = _body(self.send(request))["data"]["points"]
        return points

    def progress(
        self, vdn_id: int, campaign_id: str, minutes: int | None = None
    ) -> list[dict[str, Any]]:
        """The ``points`` of a campaign's progress: per minute (the current one last), its
        ``startTime``, ``calls``, ``connects`` and ``finished``."""
        request = self.build_progress_request(vdn_id, campaign_id, minutes)
        points: list[dict[str, Any]] = _body(self.send(request))["data"]["points"]
        return points

    def build_export_request(
        self,
        vdn_id: int,
        *,
        history: bool = False,
        campaign_id: str | None = None,
        batch_id: str | None = None,
        start: date | None = None,
        end: date | None = None,
        interval: str = "day",
        export_format: str = "csv",
    ) -> httpx.Request:
        """The unsigned request of the statistics export, or with ``history`` of the history's
        (every campaign without ``campaign_id``; no dates: today)."""
        params = {"format": export_format, **_scope(campaign_id, batch_id)}
        path = STATISTICS_EXPORT_PATH
        if history:
            params.update(_dates(start, end), interval=interval)
            path = HISTORY_EXPORT_PATH
        return self._http.build_request("GET", path.format(vdn_id=vdn_id), params=params)

    def export(
        self,
        vdn_id: int,
        destination: str | os.PathLike[str] | None = None,
        *,
        history: bool = False,
        campaign_id: str | None = None,
        batch_id: str | None = None,
        start: date | None = None,
        end: date | None = None,
        interval: str = "day",
        export_format: str = "csv",
        progress: Callable[[int, int], None] | None = None,
    ) -> ExportedFile:
        """The statistics, or with ``history`` the history, streamed into a file (as
        ``download`` says); its parameters as ``build_export_request`` takes them."""
        request = self.build_export_request(
            vdn_id, history=history, campaign_id=campaign_id, batch_id=batch_id, start=start,
            end=end, interval=interval, export_format=export_format,
        )  # fmt: skip
        return self.download(request, destination, progress)

    def download(
        self,
        request: httpx.Request,
        destination: str | os.PathLike[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ExportedFile:
        """Stream an export's answer (``build_export_request``) into a file: ``destination``,
        else the name the API gives, in the current directory (or in ``destination``, a
        directory). ``progress(rows, bytes)`` is called as they arrive.

        The file appears only complete: it is written as ``destination.part`` and renamed
        once the API ended the transfer. A transfer cut short (the API failed midway, or the
        connection was lost) removes the part and raises ``IncompleteExport``; an answer
        other than 200 raises ``StatisticsApiError`` before anything is written.
        """
        response = self._http.send(request, stream=True)
        try:
            if response.status_code != 200:
                response.read()
                _body(response)
            target = Path(destination or _attachment_name(response))
            if target.is_dir():
                target /= _attachment_name(response)
            return _download(response, target, progress)
        finally:
            response.close()

    def abandon_rate(
        self,
        vdn_id: int,
        campaign_id: str | None = None,
        batch_id: str | None = None,
        basis: str = "live",
    ) -> dict[str, Any]:
        """``data`` of the abandon rate: the VDN's limit, ``total`` and ``campaigns`` (each with
        its ``batches``), each with its windows today, rolling24h, rolling30d and life."""
        request = self.build_abandon_rate_request(vdn_id, campaign_id, batch_id, basis)
        data: dict[str, Any] = _body(self.send(request))["data"]
        return data

    def pacing(
        self, vdn_id: int, campaign_id: str | None = None, batch_id: str | None = None
    ) -> dict[str, Any]:
        """``data`` of the pacing: ``now``, ``total`` and ``campaigns`` (each with its
        ``batches``), each with its records, paces per minute, state and ETA."""
        request = self.build_pacing_request(vdn_id, campaign_id, batch_id)
        data: dict[str, Any] = _body(self.send(request))["data"]
        return data

    def create_webhook(
        self, url: str, vdns: list[int], kinds: list[str] | None = None
    ) -> dict[str, Any]:
        """Subscribe ``url`` to the notifications of ``vdns`` (of ``kinds``: every kind when
        None); the subscription, with its ``secret`` (given this once: keep it)."""
        body: dict[str, Any] = {"url": url, "vdns": vdns}
        if kinds:
            body["kinds"] = kinds
        request = self._http.build_request("POST", WEBHOOKS_PATH, content=json.dumps(body))
        data: dict[str, Any] = _body(self.send(request))["data"]
        return data

    def webhooks(self) -> list[dict[str, Any]]:
        """The subscriptions within the key's VDNs (without their secrets)."""
        data: list[dict[str, Any]] = _body(
            self.send(self._http.build_request("GET", WEBHOOKS_PATH))
        )["data"]
        return data

    def delete_webhook(self, subscription_id: str) -> None:
        """Remove a subscription (``StatisticsApiError`` when the key sees no such one)."""
        path = f"{WEBHOOKS_PATH}/{subscription_id}"
        _body(self.send(self._http.build_request("DELETE", path)))

    def curl_command(
        self,
        vdn_id: int,
        campaign_id: str | None = None,
        batch_id: str | None = None,
        request: httpx.Request | None = None,
    ) -> str:
        """A ready-to-paste curl command for this request (or for ``request``, built above),
        signed now (valid for the window)."""
        request = request or self.build_request(vdn_id, campaign_id, batch_id)
        if self.auth is not None:
            sign(request, self.auth.access_key, self.auth.secret_key, self.clock())
        parts = ["curl", "-s"]
        for name in ("Content-Type", "Authorization"):
            if name in request.headers:
                parts += ["-H", f"{name}: {request.headers[name]}"]
        parts.append(str(request.url))
        return shlex.join(parts)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StatisticsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _dates(start: date | None, end: date | None) -> dict[str, str]:
    """startDate and endDate when given (the API refuses one without the other, named)."""
    dates = {"startDate": start, "endDate": end}
    return {name: day.isoformat() for name, day in dates.items() if day is not None}


def _scope(campaign_id: str | None, batch_id: str | None) -> dict[str, str]:
    """campaignId and batchId when given (the API refuses a batch without its campaign)."""
    scope = {"campaignId": campaign_id, "batchId": batch_id}
    return {name: value for name, value in scope.items() if value is not None}


def _body(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON; ``StatisticsApiError`` on anything but a 2xx (201: created)."""
    if not 200 <= response.status_code < 300:
        try:
            body = response.json()
            code, description = str(body["resultCode"]), str(body["resultDesc"])
        except (ValueError, KeyError, TypeError):
            code, description = "", response.text[:200]
        raise StatisticsApiError(response.status_code, code, description)
    answer: dict[str, Any] = response.json()
    return answer


class IncompleteExport(Exception):
    """An export's transfer was cut short, by the API (which fails midway that way: docs/api.md,
    "Exports") or by the connection; nothing was left at the destination."""


@dataclass(frozen=True)
class ExportedFile:
    """A complete export: where it is, its rows (without the CSV header) and its bytes."""

    path: Path
    rows: int
    size: int


def _download(
    response: httpx.Response, target: Path, progress: Callable[[int, int], None] | None
) -> ExportedFile:
    """The body of ``response`` into ``target``, by way of ``target.part`` (see ``export``)."""
    # Ids hold no line break (core/keys.py): a row is a line, and a CSV's first line its header.
    header_lines = 1 if response.headers.get("content-type", "").startswith("text/csv") else 0
    partial = target.with_name(target.name + ".part")
    lines = size = 0
    try:
        with partial.open("wb") as file:
            for chunk in response.iter_bytes():
                file.write(chunk)
                lines += chunk.count(b"\n")
                size += len(chunk)
                if progress is not None:
                    progress(max(lines - header_lines, 0), size)
    except httpx.HTTPError as error:
        partial.unlink(missing_ok=True)
        raise IncompleteExport(
            f"the export was cut short after {size} bytes ({error}); nothing was written"
        ) from error
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return ExportedFile(target, max(lines - header_lines, 0), size)


def _attachment_name(response: httpx.Response) -> str:
    """The file name of ``Content-Disposition``, without any directory in it."""
    match = re.search(r'filename="([^"]+)"', response.headers.get("content-disposition", ""))
    name = Path(match.group(1)).name if match else ""
    return name if name not in ("", ".", "..") else "export"


# --- push: the statistics as they change (docs/api.md, "Push") ----------------------------------

# Answers after which a watch tries again (after Retry-After when given); any other refusal is
# the caller's to fix, and raised.
_TRY_AGAIN = {429, 502, 503, 504}


@dataclass(frozen=True)
class PushedChange:
    """One event of the statistics stream: a campaign's counters after a change.

    ``snapshot``: counters that stand for changes not sent one by one (the first event of a new
    subscription, or of a resumption from a point no longer kept). ``counters`` holds the eleven
    counters of a countDetail entry, by name; ``stat_date`` the day of the daily ones.
    """

    event_id: str | None
    campaign_id: str
    change_id: str
    stat_date: str
    snapshot: bool
    counters: dict[str, int]


async def watch(
    base_url: str,
    vdn_id: int,
    *,
    campaign_id: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    last_event_id: str | None = None,
    retry_seconds: float = 1.0,
    idle_seconds: float = 60.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncGenerator[PushedChange, None]:
    """Every change of the VDN's campaigns (or of one), from now, or after ``last_event_id``.

    A lost connection, or one quiet for ``idle_seconds`` (the API sends a heartbeat every 15 s
    by default), is opened again after ``retry_seconds`` with the last id received: nothing is
    missed, and what the API sends again is skipped here (a change no newer than one already
    yielded for its campaign). Runs until the caller stops iterating;
    ``StatisticsApiError`` when the API refuses the subscription for good (401, 400).
    """
    auth = signer(access_key, secret_key)
    params = {"campaignId": campaign_id} if campaign_id is not None else {}
    newest: dict[str, tuple[int, int]] = {}
    timeout = httpx.Timeout(10.0, read=idle_seconds)
    async with httpx.AsyncClient(
        base_url=base_url, auth=auth, timeout=timeout, transport=transport
    ) as http:
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            pause = retry_seconds
            try:
                async with http.stream(
                    "GET", STREAM_PATH.format(vdn_id=vdn_id), params=params, headers=headers
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        if response.status_code not in _TRY_AGAIN:
                            _body(response)
                        pause = _retry_after(response, retry_seconds)
                    else:
                        async for event in server_sent_events(response.aiter_lines()):
                            last_event_id = event.get("id") or last_event_id
                            change = _pushed_change(event, last_event_id)
                            if change is None:
                                continue
                            order = parse_change_id(change.change_id)
                            if order <= newest.get(change.campaign_id, (-1, -1)):
                                continue
                            newest[change.campaign_id] = order
                            yield change
            except httpx.TransportError:
                pass  # lost or quiet: resume after the last id
            await asyncio.sleep(pause)


def _retry_after(response: httpx.Response, default: float) -> float:
    """Retry-After in seconds, within 0..300; ``default`` when it is absent or a date."""
    try:
        seconds = float(response.headers.get("Retry-After", default))
    except ValueError:
        return default
    return min(max(seconds, 0.0), 300.0) if seconds == seconds else default  # NaN: default


async def server_sent_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, str]]:
    """The events of a ``text/event-stream`` (its fields: id, event, data), comments skipped."""
    event: dict[str, str] = {}
    async for line in lines:
        if not line:
            if "data" in event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data" and "data" in event:
            event["data"] += "\n" + value
        elif name in ("id", "event", "data"):
            event[name] = value


def _pushed_change(event: dict[str, str], event_id: str | None) -> PushedChange | None:
    if event.get("event", "message") not in ("change", "snapshot"):
        return None
    data: dict[str, Any] = json.loads(event["data"])
    return PushedChange(
        event_id=event_id,
        campaign_id=data.pop("campaignId"),
        change_id=data.pop("changeId"),
        stat_date=data.pop("statDate"),
        snapshot=bool(data.pop("snapshot")),
        counters=data,
    )
