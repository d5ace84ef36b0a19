"""Flow control: N requests per caller and VDN in a window, then the seed's 429; one budget
shared by every API process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import cycle
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis
from fastapi import Request
from prometheus_client import REGISTRY
from pydantic import SecretStr
from redis.asyncio import Redis as AsyncRedis

from isales_stats.api.admission import Admission, Verdict
from isales_stats.api.auth import Caller
from isales_stats.api.errors import TOO_FREQUENT_MESSAGE, ErrorCode
from isales_stats.client import StatisticsClient
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess
from tests.support.app_client import serve, statistics_path
from tests.support.credentials import (
    ACCESS_KEY,
    OTHER_ACCESS_KEY,
    OTHER_SECRET_KEY,
    SECRET_KEY,
    TEST_KEYS,
)

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

LIMIT = 5


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def limited_settings(test_settings: Settings) -> Settings:
    return test_settings.model_copy(
        update={
            "auth_enabled": True,
            "auth_keys": SecretStr(TEST_KEYS),
            "rate_limit_requests": LIMIT,
        }
    )


def rate_limited_total() -> float:
    return REGISTRY.get_sample_value("isales_api_rate_limited_total") or 0.0


def assert_too_frequent(response: httpx.Response, window_seconds: int = 300) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == {
        "resultCode": ErrorCode.TOO_FREQUENT.value,
        "resultDesc": TOO_FREQUENT_MESSAGE,
        "returnCode": ErrorCode.TOO_FREQUENT.value,
        "returnDesc": TOO_FREQUENT_MESSAGE,
    }
    assert 1 <= int(response.headers["Retry-After"]) <= window_seconds


async def test_the_request_after_the_limit_gets_the_seeds_429(limited_settings: Settings) -> None:
    before = rate_limited_total()
    async with serve(limited_settings, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as client:
        statuses = [(await client.get(statistics_path(1))).status_code for _ in range(LIMIT)]
        refused = await client.get(statistics_path(1))
        again = await client.get(statistics_path(1), params={"campaignId": "C1"})
    assert statuses == [200] * LIMIT
    assert_too_frequent(refused)
    assert_too_frequent(again)
    assert rate_limited_total() == before + 2


async def test_the_budget_is_per_access_key_and_vdn(limited_settings: Settings) -> None:
    async with serve(limited_settings, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as client:
        for _ in range(LIMIT):
            await client.get(statistics_path(1))
        assert (await client.get(statistics_path(1))).status_code == 429
        assert (await client.get(statistics_path(2))).status_code == 200
    async with serve(
        limited_settings, access_key=OTHER_ACCESS_KEY, secret_key=OTHER_SECRET_KEY
    ) as other:
        assert (await other.get(statistics_path(1))).status_code == 200


async def test_refused_requests_do_not_use_the_budget(limited_settings: Settings) -> None:
    async with serve(limited_settings, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as client:
        for _ in range(LIMIT * 2):
            assert (await client.get(statistics_path(1) + "?foo=1")).status_code == 400
    async with serve(limited_settings) as unsigned:
        for _ in range(LIMIT * 2):
            assert (await unsigned.get(statistics_path(1))).status_code == 401
    async with serve(limited_settings, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as client:
        assert (await client.get(statistics_path(1))).status_code == 200


async def test_the_window_lives_in_redis_and_ends(limited_settings: Settings) -> None:
    short = limited_settings.model_copy(update={"rate_limit_window_seconds": 1})
    async with serve(short, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as client:
        for _ in range(LIMIT):
            await client.get(statistics_path(1))
        assert_too_frequent(await client.get(statistics_path(1)), window_seconds=1)
        key = KeyLayout(short.key_prefix).flow_control(f"ak:{ACCESS_KEY}", 1)
        with redis.Redis.from_url(short.redis_url) as direct:
            assert 0 < direct.pttl(key) <= 1000
        await anyio.sleep(1.1)
        assert (await client.get(statistics_path(1))).status_code == 200


async def test_without_auth_the_caller_is_its_address(test_settings: Settings) -> None:
    anonymous = test_settings.model_copy(update={"rate_limit_requests": LIMIT})
    async with serve(anonymous, client_address="10.0.0.1") as first:
        for _ in range(LIMIT):
            assert (await first.get(statistics_path(1))).status_code == 200
        assert_too_frequent(await first.get(statistics_path(1)))
    async with serve(anonymous, client_address="10.0.0.2") as second:
        assert (await second.get(statistics_path(1))).status_code == 200


async def test_zero_switches_flow_control_off(limited_settings: Settings) -> None:
    unlimited = limited_settings.model_copy(update={"rate_limit_requests": 0})
    async with serve(unlimited, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as client:
        for _ in range(LIMIT * 4):
            assert (await client.get(statistics_path(1))).status_code == 200


async def test_a_key_has_one_budget_over_all_its_vdns(limited_settings: Settings) -> None:
    """Five per VDN, eight over all: walking VDNs does not multiply the budget, and a request
    one budget refuses is not counted in the other."""
    walker = limited_settings.model_copy(update={"rate_limit_key_requests": 8})
    async with serve(walker, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as client:
        first = [(await client.get(statistics_path(1))).status_code for _ in range(LIMIT + 2)]
        rest = [(await client.get(statistics_path(vdn))).status_code for vdn in range(2, 6)]
        assert_too_frequent(await client.get(statistics_path(6)))
    # VDN 1: five served, two refused by its own budget (and not counted over all VDNs); then
    # three more VDNs fit in the eight, the fourth does not.
    assert first == [200] * LIMIT + [429, 429]
    assert rest == [200, 200, 200, 429]
    async with serve(walker, access_key=OTHER_ACCESS_KEY, secret_key=OTHER_SECRET_KEY) as other:
        assert (await other.get(statistics_path(6))).status_code == 200


async def test_a_forwarded_address_is_believed_only_from_a_trusted_proxy(
    test_settings: Settings, access_lines: list[dict[str, Any]]
) -> None:
    """With authentication off the caller is its address; a client that writes its own
    X-Forwarded-For does not get a fresh budget per request."""
    anonymous = test_settings.model_copy(
        update={"rate_limit_requests": LIMIT, "trusted_proxies": ["10.9.0.0/16"]}
    )
    spoofed = [{"X-Forwarded-For": f"192.0.2.{number}"} for number in range(LIMIT + 1)]
    async with serve(anonymous, client_address="10.0.0.1") as direct:
        statuses = [(await direct.get(statistics_path(1), headers=h)).status_code for h in spoofed]
    assert statuses == [200] * LIMIT + [429]
    # Behind the proxy, the caller is the address found right to left past the proxies: what
    # the client wrote itself further left (here a fresh address each time) does not count.
    async with serve(anonymous, client_address="10.9.0.5") as proxy:
        for number in range(LIMIT):
            chain = {"X-Forwarded-For": f"203.0.113.{number}, 198.51.100.9, 10.9.0.4"}
            assert (await proxy.get(statistics_path(1), headers=chain)).status_code == 200
        same_client = {"X-Forwarded-For": "203.0.113.99, 198.51.100.9, 10.9.0.4"}
        assert_too_frequent(await proxy.get(statistics_path(1), headers=same_client))
        other_client = {"X-Forwarded-For": "198.51.100.10"}
        assert (await proxy.get(statistics_path(1), headers=other_client)).status_code == 200
    # The access log names the caller so found, and the proxy that connected.
    last = access_lines[-1]
    assert (last["client"], last["peer"]) == ("198.51.100.10", "10.9.0.5")


@pytest.fixture
def two_api_processes(limited_settings: Settings, tmp_path: Path) -> Iterator[list[str]]:
    with (
        ApiProcess(limited_settings, log_dir=tmp_path) as first,
        ApiProcess(limited_settings, log_dir=tmp_path) as second,
    ):
        yield [first.url, second.url]


def test_two_api_processes_share_one_limit(two_api_processes: list[str]) -> None:
    clients = [StatisticsClient(url, ACCESS_KEY, SECRET_KEY) for url in two_api_processes]
    try:
        alternating = cycle(clients)
        statuses = [next(alternating).get(4).status_code for _ in range(LIMIT)]
        assert statuses == [200] * LIMIT
        for client in clients:
            assert_too_frequent(client.get(4))
        # The other VDN and the other key still have their own budgets, on either process.
        assert clients[1].get(5).status_code == 200
        with StatisticsClient(two_api_processes[0], OTHER_ACCESS_KEY, OTHER_SECRET_KEY) as other:
            assert other.get(4).status_code == 200
    finally:
        for client in clients:
            client.close()


async def test_the_same_request_run_again_is_not_a_replay_nor_counted_twice(
    limited_settings: Settings,
) -> None:
    """run_pipeline runs a pipeline again after NOSCRIPT (a restarted Redis forgot a script):
    the gate of that same request gets its first answer again, counted once; another request
    with the signature is a replay."""
    async with AsyncRedis.from_url(limited_settings.redis_url) as redis:
        admission = Admission(
            redis,
            limited_settings.key_prefix,
            vdn_requests=LIMIT,
            caller_requests=0,
            window_seconds=300,
            signature_lifetime_seconds=960,
        )
        caller = Caller(
            f"ak:{ACCESS_KEY}", ACCESS_KEY, signature="ab" * 32, signed_at=datetime.now(UTC)
        )
        request = Request({"type": "http", "headers": []})
        gate = admission.gate(request, caller, 1)
        again = await admission.decide(gate), await admission.decide(gate)
        replay = await admission.decide(admission.gate(request, caller, 1))
        count = await redis.get(
            KeyLayout(limited_settings.key_prefix).flow_control(caller.identity, 1)
        )
    assert [decision.verdict for decision in again] == [Verdict.ADMITTED, Verdict.ADMITTED]
    assert replay.verdict is Verdict.REPLAYED
    assert count == b"1"
