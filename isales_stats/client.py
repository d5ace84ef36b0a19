"""A small client of the statistics API that signs its requests (auth-v2 AK/SK).

    with StatisticsClient("http://127.0.0.1:8000", access_key, secret_key) as client:
        campaigns = client.count_detail(1, campaign_id="1001")
        failures = client.fail_categories(1, "1001", date(2026, 12, 1), date(2026, 12, 6))
        hours = client.history(1, "1001", interval="hour")

``AkSkAuth`` is the signer on its own, for any httpx client: it signs ``host`` and
``content-type`` (setting the JSON content type iSales requires when the request has none), the
path, the query and the body, at the moment of sending.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Generator
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any

import httpx

# Re-exported: callers of the client build their own requests with them too.
from isales_stats.core.interface import CONTENT_TYPE as CONTENT_TYPE
from isales_stats.core.interface import FAIL_CATEGORY_PATH as FAIL_CATEGORY_PATH
from isales_stats.core.interface import HISTORY_PATH as HISTORY_PATH
from isales_stats.core.interface import STATISTICS_PATH as STATISTICS_PATH
from isales_stats.core.signing import sign_request

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
    statistics/history); signs when given an AK and an SK."""

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
        if bool(access_key) != bool(secret_key):
            raise ValueError("give both an access key and a secret key, or neither")
        self.auth = AkSkAuth(access_key, secret_key, clock) if access_key and secret_key else None
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


def _body(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON; ``StatisticsApiError`` on anything but a 200."""
    if response.status_code != 200:
        try:
            body = response.json()
            code, description = str(body["resultCode"]), str(body["resultDesc"])
        except (ValueError, KeyError, TypeError):
            code, description = "", response.text[:200]
        raise StatisticsApiError(response.status_code, code, description)
    answer: dict[str, Any] = response.json()
    return answer
