"""The subscription API: signed, scoped to the key's VDNs, addresses checked, the secret once."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from isales_stats.api.errors import ErrorCode
from isales_stats.client import WEBHOOKS_PATH
from isales_stats.core.settings import Settings
from isales_stats.core.webhooks import AddressRefused, check_addresses, check_url
from tests.support.app_client import serve
from tests.support.credentials import (
    TENANT_A_KEY,
    TENANT_A_SECRET,
    TENANT_B_KEY,
    TENANT_B_SECRET,
    TEST_KEYS,
)

pytestmark = [pytest.mark.stack, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def auth_settings(test_settings: Settings) -> Settings:
    return test_settings.model_copy(
        update={"auth_enabled": True, "auth_keys": SecretStr(TEST_KEYS)}
    )


async def test_a_subscription_is_made_listed_and_removed_within_the_key_scope(
    auth_settings: Settings,
) -> None:
    async with serve(auth_settings, access_key=TENANT_A_KEY, secret_key=TENANT_A_SECRET) as a:
        made = await a.post(
            WEBHOOKS_PATH, json={"url": "https://93.184.215.14/hooks", "vdns": [101, 100]}
        )
        assert made.status_code == 201, made.text
        data = made.json()["data"]
        assert data["vdns"] == [100, 101]
        assert data["secret"].startswith("whsec_")
        assert len(base64.b64decode(data["secret"].removeprefix("whsec_"))) >= 24
        listed = (await a.get(WEBHOOKS_PATH)).json()["data"]
        assert [s["id"] for s in listed] == [data["id"]]
        assert "secret" not in listed[0]
    async with serve(auth_settings, access_key=TENANT_B_KEY, secret_key=TENANT_B_SECRET) as b:
        assert (await b.get(WEBHOOKS_PATH)).json()["data"] == []
        refused = await b.delete(f"{WEBHOOKS_PATH}/{data['id']}")
        assert refused.status_code == 400
    async with serve(auth_settings, access_key=TENANT_A_KEY, secret_key=TENANT_A_SECRET) as a:
        assert (await a.delete(f"{WEBHOOKS_PATH}/{data['id']}")).status_code == 200
        assert (await a.get(WEBHOOKS_PATH)).json()["data"] == []


async def test_a_vdn_outside_the_scope_is_refused_as_a_bad_signature(
    auth_settings: Settings,
) -> None:
    async with serve(auth_settings, access_key=TENANT_B_KEY, secret_key=TENANT_B_SECRET) as b:
        refused = await b.post(
            WEBHOOKS_PATH, json={"url": "https://93.184.215.14/h", "vdns": [200, 100]}
        )
    assert refused.status_code == 401
    assert refused.json()["resultCode"] == ErrorCode.AUTHENTICATION_FAILED.value


async def test_an_unsigned_or_tampered_request_is_refused(auth_settings: Settings) -> None:
    async with serve(auth_settings) as anonymous:
        assert (await anonymous.get(WEBHOOKS_PATH)).status_code == 401
    async with serve(auth_settings, access_key=TENANT_A_KEY, secret_key="wrong-secret-0123") as a:
        refused = await a.post(WEBHOOKS_PATH, json={"url": "https://93.184.215.14/", "vdns": [100]})
        assert refused.status_code == 401


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "http://93.184.215.14/h", "vdns": [100]}, ErrorCode.WRONG_VALUE),
        ({"url": "https://127.0.0.1/h", "vdns": [100]}, ErrorCode.WRONG_VALUE),
        ({"url": "https://10.1.2.3/h", "vdns": [100]}, ErrorCode.WRONG_VALUE),
        ({"url": "https://169.254.169.254/latest", "vdns": [100]}, ErrorCode.WRONG_VALUE),
        ({"url": "https://[::1]/h", "vdns": [100]}, ErrorCode.WRONG_VALUE),
        ({"url": "https://224.0.0.1/h", "vdns": [100]}, ErrorCode.WRONG_VALUE),
        ({"url": "https://user:pw@93.184.215.14/h", "vdns": [100]}, ErrorCode.WRONG_VALUE),
        ({"url": "https://93.184.215.14/h", "vdns": []}, ErrorCode.EMPTY_PARAMETER),
        ({"url": "https://93.184.215.14/h", "vdns": ["100"]}, ErrorCode.WRONG_TYPE),
        (
            {"url": "https://93.184.215.14/h", "vdns": [100], "kinds": ["nope"]},
            ErrorCode.WRONG_VALUE,
        ),
        ({"url": "https://93.184.215.14/h", "vdns": [100], "x": 1}, ErrorCode.TOO_MANY_PARAMETERS),
        ({"vdns": [100]}, ErrorCode.EMPTY_PARAMETER),
    ],
)
async def test_bad_subscriptions_are_refused_with_the_isales_error_shape(
    auth_settings: Settings, body: dict[str, object], code: ErrorCode
) -> None:
    async with serve(auth_settings, access_key=TENANT_A_KEY, secret_key=TENANT_A_SECRET) as a:
        refused = await a.post(WEBHOOKS_PATH, json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["resultCode"] == code.value


async def test_a_body_that_is_not_json_is_refused(auth_settings: Settings) -> None:
    async with serve(auth_settings, access_key=TENANT_A_KEY, secret_key=TENANT_A_SECRET) as a:
        refused = await a.post(WEBHOOKS_PATH, content=b"{not json")
    assert refused.status_code == 400


async def test_http_and_private_addresses_pass_only_when_allowed(auth_settings: Settings) -> None:
    allowed = auth_settings.model_copy(
        update={"webhook_allow_http": True, "webhook_allow_private_addresses": True}
    )
    async with serve(allowed, access_key=TENANT_A_KEY, secret_key=TENANT_A_SECRET) as a:
        made = await a.post(WEBHOOKS_PATH, json={"url": "http://127.0.0.1:9/h", "vdns": [100]})
    assert made.status_code == 201, made.text


def test_a_name_resolving_to_any_internal_address_is_refused() -> None:
    assert check_url("https://hooks.example.com/x", allow_http=False) == ("hooks.example.com", 443)
    with pytest.raises(AddressRefused, match="private"):
        check_addresses("rebinding.example", ["93.184.215.14", "192.168.1.10"])
    with pytest.raises(AddressRefused, match="loopback"):
        check_addresses("mapped.example", ["::ffff:127.0.0.1"])
    assert check_addresses("ok.example", ["93.184.215.14"]) == ["93.184.215.14"]
