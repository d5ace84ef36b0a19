"""Bodies bounded before they are read (api/body_limit.py), and callers refused before theirs.

The app is served in-process with a request body that counts what the server pulls from it,
so "read no more than the limit" is measured, not assumed; one test sends 50 MB to a real
``isales-stats api`` over a socket.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess
from tests.support.app_client import serve, statistics_path
from tests.support.callbacks import PATH, result
from tests.support.credentials import TEST_KEYS

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

FIFTY_MB = 50 * 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def guarded(test_settings: Settings) -> Settings:
    return test_settings.model_copy(
        update={
            "auth_enabled": True,
            "auth_keys": SecretStr(TEST_KEYS),
            "callback_tokens": SecretStr("tenant-a-callback-token vdns=100-109"),
        }
    )


class CountedBody:
    """A 50 MB request body that notes how much of it the server pulled."""

    def __init__(self) -> None:
        self.pulled = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        while self.pulled < FIFTY_MB:
            self.pulled += CHUNK
            yield b"[" + b" " * (CHUNK - 1)


async def test_a_declared_50_mb_body_is_refused_without_reading_a_byte(guarded: Settings) -> None:
    body = CountedBody()
    async with serve(guarded) as client:
        answer = await client.post(
            PATH,
            params={"token": "tenant-a-callback-token"},
            content=body.chunks(),
            headers={"Content-Length": str(FIFTY_MB)},
        )
    assert answer.status_code == 413
    assert answer.json() == {
        "retCode": "413",
        "retMsg": f"the request body is over the limit of {guarded.callback_max_body_bytes} bytes",
    }
    assert body.pulled <= CHUNK  # the transport's first chunk at most; the app read none


async def test_a_streamed_body_is_read_up_to_the_limit_and_no_further(guarded: Settings) -> None:
    body = CountedBody()
    async with serve(guarded) as client:
        answer = await client.post(
            PATH, params={"token": "tenant-a-callback-token"}, content=body.chunks()
        )
    assert answer.status_code == 413
    assert body.pulled <= guarded.callback_max_body_bytes + 2 * CHUNK, body.pulled


async def test_a_caller_without_token_or_signature_is_refused_before_its_body(
    guarded: Settings,
) -> None:
    for request in ({"params": {"token": "not-a-token-of-anyone"}}, {}):
        body = CountedBody()
        async with serve(guarded) as client:
            answer = await client.post(PATH, content=body.chunks(), **request)  # type: ignore[arg-type]
        assert answer.status_code == 401
        assert body.pulled <= CHUNK


async def test_too_many_results_in_one_body_get_413(guarded: Settings) -> None:
    settings = guarded.model_copy(update={"callback_max_results": 3})
    results = [result(f"s{n}", f"c{n}", vdnId=100) for n in range(4)]
    async with serve(settings) as client:
        answer = await client.post(PATH, params={"token": "tenant-a-callback-token"}, json=results)
    assert answer.status_code == 413
    assert answer.json()["retMsg"] == "more than 3 results in one body"


async def test_a_statistics_request_with_a_body_over_16_kib_gets_the_envelope(
    guarded: Settings,
) -> None:
    async with serve(guarded) as client:
        answer = await client.request("GET", statistics_path(1), content=b"x" * 20_000)
    assert answer.status_code == 413
    assert answer.json()["resultCode"] == "0200001"
    assert "over the limit of 16384 bytes" in answer.json()["resultDesc"]


def test_an_unauthenticated_50_mb_post_to_the_real_api_gets_413_at_once(
    guarded: Settings, tmp_path: Path
) -> None:
    with ApiProcess(guarded, log_dir=tmp_path) as api:
        began = time.monotonic()
        with socket.create_connection(("127.0.0.1", api.port), timeout=10) as connection:
            connection.sendall(
                f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {FIFTY_MB}\r\n\r\n".encode()
            )
            sent = 0
            answer = b""
            connection.settimeout(0.05)
            while sent < FIFTY_MB and b"\r\n\r\n" not in answer:
                try:
                    sent += connection.send(b" " * CHUNK)
                except OSError:  # the server closed the connection: it will read no more
                    break
                with contextlib.suppress(TimeoutError):
                    answer += connection.recv(65536)
            connection.settimeout(10)
            while b"\r\n\r\n" not in answer:
                more = connection.recv(65536)
                if not more:
                    break
                answer += more
        took = time.monotonic() - began
        # Statistics still served: the API did not choke on the body.
        health = httpx.get(api.url + "/healthz", timeout=10)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < FIFTY_MB, "the whole 50 MB went out before any answer"
    assert health.status_code == 200
    print(f"\n[body limit] 413 after {sent:,} bytes sent of 50 MB, in {took:.2f} s")
