"""Row 7 of the fault matrix: the API under attack, as a real process.

500 concurrent requests mixing valid signatures, expired ones, wrong ones, unknown keys, no
header at all and garbage parameters: no 5xx, every failure of authentication is the same 401
that tells nothing, and flow control still counts exactly what it should. The same valid
request sent again is refused as a replay, however many are sent at once.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from isales_stats.client import sign
from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess
from tests.support.app_client import JSON_HEADERS
from tests.support.credentials import ACCESS_KEY, SECRET_KEY, TEST_KEYS

pytestmark = pytest.mark.stack

REQUESTS = 500
LIMIT = 120  # valid requests per AK and VDN in the window: some of the valid ones get 429


@pytest.fixture
def api_url(test_settings: Settings, tmp_path: Path) -> Iterator[str]:
    settings = test_settings.model_copy(
        update={
            "auth_enabled": True,
            "auth_keys": SecretStr(TEST_KEYS),
            "rate_limit_requests": LIMIT,
            "access_log": False,
        }
    )
    with ApiProcess(settings, log_dir=tmp_path) as api:
        yield api.url


def attack(kind: str, base_url: str, now: datetime) -> httpx.Request:
    path = "/rest/isales/v2/openapi/campaigns/7/statistics"
    request = httpx.Request("GET", f"{base_url}{path}", headers=JSON_HEADERS)
    if kind == "valid":
        sign(request, ACCESS_KEY, SECRET_KEY, now)
    elif kind == "expired":
        sign(request, ACCESS_KEY, SECRET_KEY, now - timedelta(minutes=16))
    elif kind == "wrong-signature":
        sign(request, ACCESS_KEY, "not-the-secret", now)
    elif kind == "unknown-key":
        sign(request, "nobody", SECRET_KEY, now)
    elif kind == "garbage-header":
        request.headers["Authorization"] = "auth-v2/" + "x/" * 50
    elif kind == "bad-parameters":
        request = httpx.Request(
            "GET", f"{base_url}/rest/isales/v2/openapi/campaigns/0x7/statistics",
            params={"batchId": "{}" * 300}, headers=JSON_HEADERS,
        )  # fmt: skip
        sign(request, ACCESS_KEY, SECRET_KEY, now)
    # "missing-header": no Authorization at all
    return request


async def fire(base_url: str, kinds: list[str]) -> list[tuple[str, httpx.Response]]:
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        # Stamped a millisecond apart: two requests signed in the same millisecond are one
        # signature, and the second would be refused as a replay (api/admission.py).
        began = datetime.now(UTC)
        requests = [
            attack(kind, base_url, began - timedelta(milliseconds=index))
            for index, kind in enumerate(kinds)
        ]
        responses = await asyncio.gather(*(client.send(request) for request in requests))
    return list(zip(kinds, responses, strict=True))


def test_five_hundred_concurrent_hostile_requests_get_no_5xx(api_url: str) -> None:
    kinds = ["valid"] * 200 + [
        kind
        for kind in (
            "expired",
            "wrong-signature",
            "unknown-key",
            "missing-header",
            "garbage-header",
            "bad-parameters",
        )
        for _ in range(50)
    ]
    random.Random(7).shuffle(kinds)
    assert len(kinds) == REQUESTS
    answers = asyncio.run(fire(api_url, kinds))

    statuses = Counter((kind, response.status_code) for kind, response in answers)
    assert not [pair for pair in statuses if pair[1] >= 500], statuses
    # Every authentication failure is one and the same 401, whatever was wrong.
    refusals = [r for kind, r in answers if kind not in ("valid", "bad-parameters")]
    assert {r.status_code for r in refusals} == {401}
    assert len({r.content for r in refusals}) == 1  # so it cannot tell which part was wrong
    # Flow control counted the valid requests exactly: LIMIT served, the rest refused.
    valid = Counter(r.status_code for kind, r in answers if kind == "valid")
    bad_parameters = Counter(r.status_code for kind, r in answers if kind == "bad-parameters")
    assert valid == {200: LIMIT, 429: 200 - LIMIT}
    assert set(bad_parameters) <= {400}


def test_one_signature_sent_fifty_times_at_once_is_served_once(api_url: str) -> None:
    """Concurrent replays race to Redis: exactly one wins, on any number of connections."""
    original = attack("valid", api_url, datetime.now(UTC))

    async def fire_copies() -> list[int]:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            copies = [
                httpx.Request("GET", original.url, headers=original.headers) for _ in range(50)
            ]
            answers = await asyncio.gather(*(client.send(copy) for copy in copies))
        return [answer.status_code for answer in answers]

    assert Counter(asyncio.run(fire_copies())) == {200: 1, 401: 49}
