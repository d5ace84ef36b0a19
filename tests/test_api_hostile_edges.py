"""The edges a hostile caller tries, each against a real API process on the real Redis: a
signature sent again with its header padded, a token hidden from the access log's redaction by
percent-encoding, a flood of result callbacks, signatures carried to another deployment, a proxy
that hides its browsers' addresses, and the time an unknown access key takes to refuse."""

from __future__ import annotations

import hmac
import os
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr

from isales_stats.client import CONTENT_TYPE, AkSkAuth, sign
from isales_stats.core import signing
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.core.signing import AuthenticationError, authenticate_request, sign_request
from tests.support.api_process import ApiProcess
from tests.support.app_client import serve
from tests.support.callbacks import PATH as CALLBACK_PATH
from tests.support.callbacks import SUCCESS
from tests.support.credentials import (
    ACCESS_KEY,
    OTHER_ACCESS_KEY,
    OTHER_SECRET_KEY,
    SECRET_KEY,
    TEST_KEYS,
)
from tests.support.ports import free_port
from tests.support.processes import cli_command
from tests.support.waiting import wait_for, wait_for_http

pytestmark = pytest.mark.anyio

STATISTICS = "/rest/isales/v2/openapi/campaigns/1/statistics"

TOKEN = "tenant-callback-token-0001"
OTHER_TOKEN = "tenant-callback-token-0002"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def signed_settings(test_settings: Settings) -> Settings:
    return test_settings.model_copy(
        update={
            "auth_enabled": True,
            "auth_keys": SecretStr(TEST_KEYS),
            "api_public_hosts": [],
            "callback_tokens": SecretStr(f"{TOKEN} vdns=*,{OTHER_TOKEN} vdns=*"),
        }
    )


@pytest.fixture
def signed_api(signed_settings: Settings, tmp_path: Path) -> Iterator[ApiProcess]:
    with ApiProcess(signed_settings, log_dir=tmp_path) as api:
        yield api


def metric(api: ApiProcess, name: str) -> float:
    """A counter's value on the API process's operations port (0 when not yet counted)."""
    for line in httpx.get(f"{api.operations_url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


# --- replay: the signature as parsed, remembered until an absolute time -----------------------

PADDINGS = [" ", "\t", " \t", "\t \t", "  ", " \t  \t"]


def raw_get(base_url: str, target: str, headers: dict[str, str]) -> int:
    """The status of a GET written byte for byte: an HTTP client library refuses to send a
    header value that ends in a space or a tab, a hostile client does not."""
    address = httpx.URL(base_url)
    lines = [f"GET {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    request = ("\r\n".join([*lines, "Connection: close", "", ""])).encode("latin-1")
    with socket.create_connection((address.host, address.port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.stack
def test_a_padded_header_is_the_same_signature_and_refused_as_a_replay(
    signed_api: ApiProcess,
) -> None:
    """uvicorn passes a header's trailing spaces and tabs on; signature checking trims them.
    Each padded copy of a used signature is a replay (401), and one marker stands for all."""
    settings = signed_api.settings
    headers = {"Host": httpx.URL(signed_api.url).netloc.decode(), "Content-Type": CONTENT_TYPE}
    authorization = sign_request(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        method="GET",
        path=STATISTICS,
        query=[("campaignId", "C1")],
        headers=headers,
        moment=datetime.now(UTC),
    )
    target = f"{STATISTICS}?campaignId=C1"
    assert raw_get(signed_api.url, target, {**headers, "Authorization": authorization}) == 200
    statuses = {
        padding: raw_get(
            signed_api.url, target, {**headers, "Authorization": authorization + padding}
        )
        for padding in PADDINGS
    }
    assert statuses == dict.fromkeys(PADDINGS, 401)
    assert metric(signed_api, 'isales_api_auth_failures_total{reason="replayed"}') == len(PADDINGS)
    layout = KeyLayout(settings.key_prefix)
    with redis.Redis.from_url(settings.redis_url) as client:
        markers = list(client.scan_iter(match=layout.signature_seen(f"ak:{ACCESS_KEY}", "*")))
    assert markers == [layout.signature_seen(f"ak:{ACCESS_KEY}", authorization[-64:]).encode()]


@pytest.mark.stack
async def test_a_padded_header_is_a_replay_whatever_the_server_strips(
    signed_settings: Settings,
) -> None:
    """uvicorn's parsers trim a header's trailing whitespace today, but the check must not rely
    on the server in front: the app itself, handed the padded values as a server that keeps them
    hands them on (uvicorn 0.51's did), refuses each copy as a replay."""
    async with serve(signed_settings) as client:
        request = client.build_request("GET", STATISTICS, params={"campaignId": "C1"})
        sign(request, ACCESS_KEY, SECRET_KEY, datetime.now(UTC))
        authorization = request.headers["Authorization"]
        assert (await client.send(request)).status_code == 200
        statuses = {}
        for padding in PADDINGS:
            request.headers["Authorization"] = authorization + padding
            statuses[padding] = (await client.send(request)).status_code
    assert statuses == dict.fromkeys(PADDINGS, 401)


@pytest.mark.stack
def test_the_replay_marker_expires_at_the_stamp_plus_window_and_skew(
    signed_api: ApiProcess,
) -> None:
    """Not a TTL counted from whenever the request reached Redis: the moment the signature stops
    passing at any API process whose clock is at most the allowed skew behind Redis'."""
    settings = signed_api.settings
    # Signed a while ago: a TTL from now would end ten minutes after the absolute time.
    stamp = datetime.now(UTC).replace(microsecond=123_000) - timedelta(minutes=10)
    with httpx.Client(base_url=signed_api.url, timeout=10) as http:
        request = http.build_request("GET", STATISTICS, params={"campaignId": "C1"})
        sign(request, ACCESS_KEY, SECRET_KEY, stamp)
        assert http.send(request).status_code == 200
    signature = request.headers["Authorization"].rsplit("/", 1)[-1]
    marker = KeyLayout(settings.key_prefix).signature_seen(f"ak:{ACCESS_KEY}", signature)
    with redis.Redis.from_url(settings.redis_url) as client:
        expires_ms = client.execute_command("PEXPIRETIME", marker)
        expires_s = client.execute_command("EXPIRETIME", marker)
    lifetime = timedelta(seconds=settings.auth_window_seconds + settings.auth_future_skew_seconds)
    expected_ms = (stamp + lifetime - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert expires_ms == expected_ms
    assert expires_s == expected_ms // 1000


# --- the access log: a token is redacted however its name is spelled ---------------------------


@pytest.mark.stack
def test_a_percent_encoded_token_name_is_redacted_in_the_access_log(
    signed_api: ApiProcess,
) -> None:
    queries = ["%74oken=secret-one", "tok%65n=secret-two", "TOKEN=secret-three", "token=secret-4"]
    with httpx.Client(base_url=signed_api.url, timeout=10) as http:
        for query in queries:
            http.post(f"{CALLBACK_PATH}?{query}", content=b"[]")

    def logged() -> str | None:
        log = signed_api.log()
        return log if all(query.split("=")[0] + "=[redacted]" in log for query in queries) else None

    log = wait_for(logged, 10)
    assert log, signed_api.log()
    assert "secret" not in log


# --- callbacks: a budget per token or key ------------------------------------------------------

BUDGET = 3


@pytest.mark.stack
def test_callbacks_over_the_budget_of_a_token_or_key_get_429(
    signed_settings: Settings, tmp_path: Path
) -> None:
    settings = signed_settings.model_copy(update={"callback_rate_limit_requests": BUDGET})
    with ApiProcess(settings, log_dir=tmp_path) as api, httpx.Client(timeout=30) as http:
        url = f"{api.url}{CALLBACK_PATH}"

        def push(**request: object) -> httpx.Response:
            return http.post(url, content=b"[]", **request)  # type: ignore[arg-type]

        under = [push(params={"token": TOKEN}) for _ in range(BUDGET)]
        assert [(answer.status_code, answer.json()) for answer in under] == [(200, SUCCESS)] * 3
        over = push(headers={"X-Callback-Token": TOKEN})  # the same token, another way
        assert over.status_code == 429
        assert over.json() == {"retCode": "429", "retMsg": "too many callbacks, push again later"}
        assert 1 <= int(over.headers["Retry-After"]) <= settings.rate_limit_window_seconds
        # Another token, and a key, have budgets of their own.
        assert push(params={"token": OTHER_TOKEN}).json() == SUCCESS
        signed = [push(auth=AkSkAuth(ACCESS_KEY, SECRET_KEY)) for _ in range(BUDGET + 1)]
        assert [answer.status_code for answer in signed] == [200] * BUDGET + [429]
        assert push(auth=AkSkAuth(OTHER_ACCESS_KEY, OTHER_SECRET_KEY)).json() == SUCCESS
        assert metric(api, "isales_api_callbacks_rate_limited_total") == 2


@pytest.mark.stack
def test_a_zero_callback_budget_switches_it_off(signed_settings: Settings, tmp_path: Path) -> None:
    settings = signed_settings.model_copy(update={"callback_rate_limit_requests": 0})
    with ApiProcess(settings, log_dir=tmp_path) as api, httpx.Client(timeout=30) as http:
        answers = [
            http.post(f"{api.url}{CALLBACK_PATH}", params={"token": TOKEN}, content=b"[]")
            for _ in range(BUDGET + 2)
        ]
    assert [answer.status_code for answer in answers] == [200] * (BUDGET + 2)


# --- signatures bound to a deployment: a warning while they are not ----------------------------


def started_api_stderr(settings: Settings, log_dir: Path) -> str:
    """What ``isales-stats api`` wrote to stderr (alone) by the time it served /healthz."""
    port = free_port()
    stderr_path = log_dir / f"api-stderr-{port}.log"
    environment = {**os.environ, **settings.as_environment()}
    command = cli_command("api", "--port", str(port), "--operations-port", "0")
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, env=environment
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
    finally:
        process.terminate()
        process.wait(15)
    return stderr_path.read_text(errors="replace")


@pytest.mark.stack
def test_the_api_warns_at_start_up_while_signatures_fit_any_host(
    signed_settings: Settings, tmp_path: Path
) -> None:
    stderr = started_api_stderr(signed_settings, tmp_path)
    warnings = [line for line in stderr.splitlines() if "ISALES_API_PUBLIC_HOSTS" in line]
    assert len(warnings) == 1, stderr
    assert warnings[0].startswith("warning: ISALES_API_PUBLIC_HOSTS is empty")
    bound = signed_settings.model_copy(update={"api_public_hosts": ["stats.example"]})
    assert "ISALES_API_PUBLIC_HOSTS" not in started_api_stderr(bound, tmp_path)
    unsigned = signed_settings.model_copy(update={"auth_enabled": False})
    assert "ISALES_API_PUBLIC_HOSTS" not in started_api_stderr(unsigned, tmp_path)


# --- the live stream's cap per address, behind a trusted proxy ----------------------------------


@pytest.mark.stack
def test_the_live_streams_cap_counts_the_address_a_trusted_proxy_forwarded(
    test_settings: Settings, tmp_path: Path
) -> None:
    """Behind a proxy every browser connects from the proxy's address: the cap per address must
    count the browser's, as flow control does (ISALES_TRUSTED_PROXIES)."""
    settings = test_settings.model_copy(
        update={
            "live_page_enabled": True,
            "push_max_subscribers_per_key": 1,
            "trusted_proxies": ["127.0.0.1"],
        }
    )

    def browser(address: str) -> dict[str, str]:
        return {"Accept": "text/event-stream", "X-Forwarded-For": address}

    timeout = httpx.Timeout(10, read=None)
    with ApiProcess(settings, log_dir=tmp_path) as api, httpx.Client(timeout=timeout) as http:
        url = f"{api.url}/live/stream/1"
        with http.stream("GET", url, headers=browser("203.0.113.1")) as first:
            assert first.status_code == 200
            with http.stream("GET", url, headers=browser("203.0.113.2")) as second:
                assert second.status_code == 200
            with http.stream("GET", url, headers=browser("203.0.113.1")) as again:
                again.read()
                assert again.status_code == 429, again.text


# --- an unknown access key costs what a wrong signature costs ---------------------------------


def test_an_unknown_access_key_is_refused_after_the_same_signing_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No timing assertion: the unknown key's path computes the signature and compares it,
    exactly as many times as a known key's wrong signature does."""
    calls: list[str] = []
    real_signature = signing._signature

    def counted(secret_key: str, prefix: str, canonical: bytes) -> str:
        calls.append(prefix.split("/")[1])
        return real_signature(secret_key, prefix, canonical)

    compared: list[bytes] = []
    real_compare = hmac.compare_digest

    def counted_compare(left: bytes, right: bytes) -> bool:
        compared.append(right)
        return real_compare(left, right)

    moment = datetime.now(UTC)
    headers = {"Host": "127.0.0.1:8000", "Content-Type": "application/json"}
    query = [("campaignId", "C1")]

    def refusal(access_key: str, secret_key: str) -> str:
        authorization = sign_request(
            access_key=access_key,
            secret_key=secret_key,
            method="GET",
            path=STATISTICS,
            query=query,
            headers=headers,
            moment=moment,
        )
        calls.clear()
        compared.clear()
        with pytest.raises(AuthenticationError) as refused:
            authenticate_request(
                authorization=authorization,
                method="GET",
                path=STATISTICS,
                query=query,
                headers=headers,
                body=b"",
                secret_keys={ACCESS_KEY: SECRET_KEY},
                now=moment,
            )
        return refused.value.reason

    monkeypatch.setattr(signing, "_signature", counted)
    monkeypatch.setattr(hmac, "compare_digest", counted_compare)
    assert refusal(ACCESS_KEY, "not-the-secret-key") == "bad-signature"
    assert (calls, len(compared)) == ([ACCESS_KEY], 1)
    assert refusal("nobody", "not-the-secret-key") == "unknown-key"
    assert (calls, len(compared)) == (["nobody"], 1)
