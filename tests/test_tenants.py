"""Tenants: a key sees only the VDNs it was issued for (api/auth.py, core/tenants.py).

Two tenants' keys (tests/support/credentials.py: A has VDNs 100-109, B has VDN 200) try each
surface on the other's VDN: the statistics, failcategorystatistics and the history, the result
callbacks (signed, or with the tenant's callback token), the live page, flow control. Every
such request gets the answer a bad signature gets (401, the same envelope and text), reads
nothing, writes nothing, leaves the victim's flow control untouched and is counted. An operator
key (``vdns=*``) sees both. A key issued without a scope stops start-up
(tests/test_api_auth.py). A request captured and sent again is refused, on any API process; one
stamped ten minutes ahead too
(tests/test_api_auth.py::test_a_stamp_ahead_of_the_clock_is_bounded_tighter_than_the_window).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from redis.asyncio import Redis

from isales_stats.api.auth import AuthConfigurationError
from isales_stats.api.main import create_app
from isales_stats.api.telemetry import ACCESS_LOGGER
from isales_stats.client import sign
from isales_stats.core.interface import FAIL_CATEGORY_PATH, HISTORY_PATH
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from tests.support.app_client import serve, statistics_path
from tests.support.callbacks import PATH, result
from tests.support.clock import now_ms
from tests.support.counting import count_events
from tests.support.credentials import (
    ACCESS_KEY,
    SECRET_KEY,
    TENANT_A_KEY,
    TENANT_A_SECRET,
    TENANT_B_KEY,
    TENANT_B_SECRET,
    TEST_KEYS,
)
from tests.support.kafka_topics import read_topic
from tests.support.streams import campaign_events

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

A_VDN, B_VDN = 105, 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def tenant_settings(test_settings: Settings) -> Settings:
    return test_settings.model_copy(
        update={"auth_enabled": True, "auth_keys": SecretStr(TEST_KEYS), "rate_limit_requests": 5}
    )


def replays() -> float:
    value = REGISTRY.get_sample_value("isales_api_auth_failures_total", {"reason": "replayed"})
    return value or 0.0


def out_of_scope() -> float:
    return REGISTRY.get_sample_value("isales_api_out_of_scope_total") or 0.0


async def rate_limit_keys(settings: Settings, vdn_id: int) -> list[bytes]:
    pattern = KeyLayout(settings.key_prefix).flow_control("*", vdn_id)
    async with Redis.from_url(settings.redis_url) as redis:
        return [key async for key in redis.scan_iter(match=pattern)]


async def get(settings: Settings, vdn_id: int, key: str, secret: str) -> httpx.Response:
    async with serve(settings, access_key=key, secret_key=secret) as client:
        return await client.get(statistics_path(vdn_id), params={"campaignId": "C1"})


async def test_each_tenant_reads_its_own_vdns_and_nothing_of_the_other(
    tenant_settings: Settings,
) -> None:
    for vdn_id in (A_VDN, B_VDN):
        await count_events(
            tenant_settings, campaign_events(vdn_id, "C1", ["b1"], 3, moment_ms=now_ms())
        )
    own_a = await get(tenant_settings, A_VDN, TENANT_A_KEY, TENANT_A_SECRET)
    own_b = await get(tenant_settings, B_VDN, TENANT_B_KEY, TENANT_B_SECRET)
    assert (own_a.status_code, own_b.status_code) == (200, 200)
    assert own_a.json()["countDetail"]
    assert own_b.json()["countDetail"]
    wrong_signature = await get(tenant_settings, A_VDN, TENANT_A_KEY, "not-the-secret")
    assert wrong_signature.status_code == 401

    before = out_of_scope()
    attempts = 12  # beyond the victim's budget of 5: no 429, and no counter of its VDN
    for _ in range(attempts):
        a_on_b = await get(tenant_settings, B_VDN, TENANT_A_KEY, TENANT_A_SECRET)
        b_on_a = await get(tenant_settings, A_VDN, TENANT_B_KEY, TENANT_B_SECRET)
        for refused in (a_on_b, b_on_a):
            # The answer to a bad signature, byte for byte: nothing says the VDN exists.
            assert refused.status_code == 401
            assert refused.content == wrong_signature.content
            assert refused.headers["WWW-Authenticate"] == "auth-v2"
    assert out_of_scope() - before == 2 * attempts
    # Flow control never ran for them: the only counters of each VDN are its own tenant's.
    layout = KeyLayout(tenant_settings.key_prefix)
    for vdn_id, owner in ((A_VDN, TENANT_A_KEY), (B_VDN, TENANT_B_KEY)):
        only = [layout.flow_control(f"ak:{owner}", vdn_id).encode()]
        assert await rate_limit_keys(tenant_settings, vdn_id) == only
    # The victims' own budgets are intact: each still reads its VDN (5 allowed, 1 used).
    assert (await get(tenant_settings, B_VDN, TENANT_B_KEY, TENANT_B_SECRET)).status_code == 200
    assert (await get(tenant_settings, A_VDN, TENANT_A_KEY, TENANT_A_SECRET)).status_code == 200
    # An operator key sees both tenants.
    for vdn_id in (A_VDN, B_VDN):
        assert (await get(tenant_settings, vdn_id, ACCESS_KEY, SECRET_KEY)).status_code == 200


@pytest.mark.parametrize("path", [FAIL_CATEGORY_PATH, HISTORY_PATH])
async def test_failures_and_history_are_no_way_around_the_scopes(
    tenant_settings: Settings, path: str
) -> None:
    """failcategorystatistics and the history: a tenant reads its own VDN's, and gets the bad
    signature's answer on the other's, which costs the victim's flow control nothing."""
    for vdn_id in (A_VDN, B_VDN):
        await count_events(
            tenant_settings, campaign_events(vdn_id, "C1", ["b1"], 3, moment_ms=now_ms())
        )
    wrong_signature = await get(tenant_settings, A_VDN, TENANT_A_KEY, "not-the-secret")
    query = {"campaignId": "C1"}
    async with serve(tenant_settings, access_key=TENANT_A_KEY, secret_key=TENANT_A_SECRET) as a:
        own = await a.get(path.format(vdn_id=A_VDN), params=query)
        other = await a.get(path.format(vdn_id=B_VDN), params=query)
    assert own.status_code == 200, own.text
    assert other.status_code == 401
    assert other.content == wrong_signature.content
    pattern = KeyLayout(tenant_settings.key_prefix).flow_control("*", B_VDN) + "*"
    async with Redis.from_url(tenant_settings.redis_url) as redis:
        assert [key async for key in redis.scan_iter(match=pattern)] == []


async def test_a_replayed_request_is_refused_on_any_api_process(
    tenant_settings: Settings,
) -> None:
    """Captured on the wire and sent again within the window, to the same or another API
    process: refused as a bad signature, and it costs the victim's budget nothing."""
    before = replays()
    first_app, second_app = create_app(tenant_settings), create_app(tenant_settings)
    async with serve(first_app) as first, serve(second_app) as second:
        request = first.build_request("GET", statistics_path(A_VDN), params={"campaignId": "C1"})
        sign(request, TENANT_A_KEY, TENANT_A_SECRET, datetime.now(UTC))
        captured = request.headers["Authorization"]
        assert (await first.send(request)).status_code == 200
        for client in (first, second, first):
            again = client.build_request("GET", statistics_path(A_VDN), params={"campaignId": "C1"})
            again.headers["Authorization"] = captured
            assert (await client.send(again)).status_code == 401
    assert replays() - before == 3
    layout = KeyLayout(tenant_settings.key_prefix)
    async with Redis.from_url(tenant_settings.redis_url) as redis:
        assert await redis.get(layout.flow_control(f"ak:{TENANT_A_KEY}", A_VDN)) == b"1"


async def test_the_live_page_is_no_way_around_the_scopes(tenant_settings: Settings) -> None:
    """The live page reads without a signature, so it is off unless an operator switches it
    on for a trusted network: with it off, no key (nor no key) reads a VDN through it."""
    await count_events(tenant_settings, campaign_events(B_VDN, "C1", ["b1"], 2, moment_ms=now_ms()))
    async with serve(tenant_settings, access_key=TENANT_A_KEY, secret_key=TENANT_A_SECRET) as a:
        for path in (f"/live/statistics/{B_VDN}", "/"):
            assert (await a.get(path)).status_code == 404, path


async def post_results(
    settings: Settings, body: list[Any], key: str, secret: str
) -> httpx.Response:
    async with serve(settings, access_key=key, secret_key=secret) as client:
        return await client.post(PATH, json=body)


async def test_a_callback_with_any_result_of_another_tenant_is_refused_whole(
    tenant_settings: Settings,
) -> None:
    ensure_topics(tenant_settings)
    own = [result("s1", "c1", vdnId=A_VDN), result("s2", "c2", vdnId=A_VDN + 1)]
    mixed = [result("s3", "c3", vdnId=A_VDN), result("s4", "c4", vdnId=B_VDN)]
    b_on_a = [result("s5", "c5", vdnId=A_VDN)]
    before = out_of_scope()
    refused = await post_results(tenant_settings, mixed, TENANT_A_KEY, TENANT_A_SECRET)
    assert (refused.status_code, refused.json()["retMsg"]) == (401, "authentication failed")
    refused_b = await post_results(tenant_settings, b_on_a, TENANT_B_KEY, TENANT_B_SECRET)
    assert refused_b.status_code == 401
    assert out_of_scope() - before == 2
    accepted = await post_results(tenant_settings, own, TENANT_A_KEY, TENANT_A_SECRET)
    assert accepted.status_code == 200, accepted.text
    published = read_topic(tenant_settings)
    # Only the two results of A's own callback: nothing of the refused one, not even its
    # element for A's VDN.
    assert sorted(event["callId"] for _, event in published) == ["c1", "c2"]


TOKENS = "tenant-a-callback-token vdns=100-109,tenant-b-callback-token vdns=200"


async def test_a_replayed_signed_callback_publishes_nothing_twice(
    tenant_settings: Settings,
) -> None:
    ensure_topics(tenant_settings)
    body = json.dumps([result("s1", "c1", vdnId=A_VDN)]).encode()
    async with serve(tenant_settings) as client:
        request = client.build_request("POST", PATH, content=body)
        sign(request, TENANT_A_KEY, TENANT_A_SECRET, datetime.now(UTC))
        first = await client.send(request)
        again = client.build_request("POST", PATH, content=body)
        again.headers["Authorization"] = request.headers["Authorization"]
        replayed = await client.send(again)
    assert (first.status_code, replayed.status_code) == (200, 401)
    assert [event["callId"] for _, event in read_topic(tenant_settings)] == ["c1"]


async def test_a_tenants_callback_token_writes_only_its_own_vdns(
    tenant_settings: Settings,
) -> None:
    settings = tenant_settings.model_copy(update={"callback_tokens": SecretStr(TOKENS)})
    ensure_topics(settings)
    mixed = [result("s1", "c1", vdnId=A_VDN), result("s2", "c2", vdnId=B_VDN)]
    access_lines: list[str] = []
    recorder = logging.Handler()
    recorder.emit = lambda record: access_lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger(ACCESS_LOGGER).addHandler(recorder)
    async with serve(settings) as client:
        a_with_b = await client.post(PATH, json=mixed, params={"token": "tenant-a-callback-token"})
        b_on_a = await client.post(
            PATH,
            json=[result("s3", "c3", vdnId=A_VDN)],
            headers={"X-Callback-Token": "tenant-b-callback-token"},
        )
        own = await client.post(
            PATH,
            json=[result("s4", "c4", vdnId=B_VDN)],
            params={"token": "tenant-b-callback-token"},
        )
    logging.getLogger(ACCESS_LOGGER).removeHandler(recorder)
    assert (a_with_b.status_code, b_on_a.status_code, own.status_code) == (401, 401, 200)
    assert [event["callId"] for _, event in read_topic(settings)] == ["c4"]
    # A token in the callBackUrl's query is a secret: the access log says only that one came.
    assert any('"query":"token=[redacted]"' in line for line in access_lines), access_lines
    assert not any("callback-token" in line for line in access_lines)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ("a-token-of-sixteen vdns=1,b-token-of-sixteen", "token 2 has no VDN scope"),
        ("short vdns=1", "token 1: at least 16 visible ASCII characters"),
        ("a-token-of-sixteen vdns=0", "token 1: VDN scope '0': VDN ids go from"),
    ],
)
def test_a_callback_token_without_a_usable_scope_stops_start_up(tokens: str, message: str) -> None:
    with pytest.raises(AuthConfigurationError, match="ISALES_CALLBACK_TOKENS") as refused:
        create_app(Settings(auth_enabled=False, callback_tokens=SecretStr(tokens)))
    assert message in str(refused.value)
    assert "sixteen" not in str(refused.value)
    assert "short" not in str(refused.value)
