"""Authentication of the statistics API: signed requests pass, every failure is the same 401,
keys come from settings or a file, and without keys the API refuses to start."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from isales_stats.api.auth import NO_KEYS_MESSAGE, AuthConfigurationError, load_key_grants
from isales_stats.api.errors import AUTHENTICATION_FAILED_MESSAGE, ErrorCode
from isales_stats.api.main import create_app
from isales_stats.api.telemetry import ACCESS_LOGGER
from isales_stats.client import AkSkAuth, StatisticsApiError, StatisticsClient, sign
from isales_stats.commands import cli_command
from isales_stats.core.days import today_in
from isales_stats.core.reference_model import reference_statistics
from isales_stats.core.settings import Settings
from isales_stats.core.signing import KeyGrant, sign_request
from isales_stats.core.tenants import EVERY_VDN, VdnScope
from tests.support.api_process import ApiProcess
from tests.support.app_client import serve, serve_with_operations, statistics_path
from tests.support.clock import now_ms
from tests.support.counting import count_events
from tests.support.credentials import (
    ACCESS_KEY,
    OTHER_ACCESS_KEY,
    OTHER_SECRET_KEY,
    SECRET_KEY,
    TENANT_A_KEY,
    TENANT_A_SECRET,
    TEST_KEYS,
    WORKED_EXAMPLE_AUTHORIZATION,
)
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.streams import campaign_events

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

# The worked example of the signature is quoted in the API docs (section "Authentication").
API_DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"
UNAUTHORISED = {
    "resultCode": ErrorCode.AUTHENTICATION_FAILED.value,
    "resultDesc": AUTHENTICATION_FAILED_MESSAGE,
    "returnCode": ErrorCode.AUTHENTICATION_FAILED.value,
    "returnDesc": AUTHENTICATION_FAILED_MESSAGE,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def auth_settings(test_settings: Settings) -> Settings:
    return test_settings.model_copy(
        update={"auth_enabled": True, "auth_keys": SecretStr(TEST_KEYS)}
    )


class RecordedAccessLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(record.getMessage()))


@pytest.fixture
def access_log() -> Iterator[RecordedAccessLog]:
    recorder = RecordedAccessLog()
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(recorder)
    yield recorder
    logger.removeHandler(recorder)


def auth_failures(reason: str) -> float:
    value = REGISTRY.get_sample_value("isales_api_auth_failures_total", {"reason": reason})
    return value or 0.0


def signed(request: httpx.Request, *, moment: datetime | None = None, **keys: str) -> None:
    sign(
        request,
        keys.get("access_key", ACCESS_KEY),
        keys.get("secret_key", SECRET_KEY),
        moment or datetime.now(UTC),
    )


# --- signed requests pass -------------------------------------------------------------------


async def test_a_signed_request_is_served(auth_settings: Settings) -> None:
    await count_events(auth_settings, campaign_events(1, "C1", ["b1"], 3, moment_ms=now_ms()))
    for access_key, secret_key in ((ACCESS_KEY, SECRET_KEY), (OTHER_ACCESS_KEY, OTHER_SECRET_KEY)):
        async with serve(auth_settings, access_key=access_key, secret_key=secret_key) as client:
            response = await client.get(statistics_path(1), params={"campaignId": "C1"})
        assert response.status_code == 200, response.text
        assert response.json()["countDetail"][0]["campaignId"] == "C1"


async def test_a_signature_within_the_window_passes(auth_settings: Settings) -> None:
    async with serve(auth_settings) as client:
        # 14 minutes old, and 50 s ahead (within the 60 s of clock skew allowed ahead).
        for skew in (timedelta(minutes=-14), timedelta(seconds=50)):
            request = client.build_request("GET", statistics_path(1))
            signed(request, moment=datetime.now(UTC) + skew)
            assert (await client.send(request)).status_code == 200, skew


async def test_authentication_comes_before_validation(auth_settings: Settings) -> None:
    async with serve(auth_settings) as client:
        unsigned = await client.get(statistics_path("abc") + "?foo=1")
        request = client.build_request("GET", statistics_path("abc") + "?foo=1")
        signed(request)
        signed_but_invalid = await client.send(request)
    assert unsigned.status_code == 401
    assert signed_but_invalid.status_code == 400
    assert signed_but_invalid.json()["resultCode"] == ErrorCode.WRONG_TYPE.value


# --- every failure is the same 401 ----------------------------------------------------------


def _tampered_query(request: httpx.Request) -> httpx.Request:
    signed(request)
    return httpx.Request(
        "GET", request.url.copy_with(query=b"campaignId=C2"), headers=request.headers
    )


def _changed_signed_header(request: httpx.Request) -> httpx.Request:
    signed(request)
    request.headers["Content-Type"] = "application/json"  # still valid, but not what was signed
    return request


def _removed_signed_header(request: httpx.Request) -> httpx.Request:
    signed(request)
    del request.headers["Content-Type"]
    return request


def _unsigned(request: httpx.Request) -> httpx.Request:
    return request


def _garbage(request: httpx.Request) -> httpx.Request:
    request.headers["Authorization"] = "Bearer something"
    return request


def _unknown_key(request: httpx.Request) -> httpx.Request:
    signed(request, access_key="nobody", secret_key="whatever")
    return request


def _wrong_secret(request: httpx.Request) -> httpx.Request:
    signed(request, secret_key="not-the-secret")
    return request


def _expired(request: httpx.Request) -> httpx.Request:
    signed(request, moment=datetime.now(UTC) - timedelta(minutes=16))
    return request


def _from_the_future(request: httpx.Request) -> httpx.Request:
    signed(request, moment=datetime.now(UTC) + timedelta(minutes=16))
    return request


def _host_not_signed(request: httpx.Request) -> httpx.Request:
    # A signature valid for any deployment holding the key: refused, host must be signed.
    request.headers["Authorization"] = sign_request(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        method="GET",
        path=request.url.path,
        query=request.url.params.multi_items(),
        headers=request.headers,
        moment=datetime.now(UTC),
        signed_headers=("content-type",),
    )
    return request


FAILURES = {
    "missing": _unsigned,
    "malformed": _garbage,
    "unknown-key": _unknown_key,
    "bad-signature": _wrong_secret,
    "expired": _expired,
}


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        *((tamper, reason) for reason, tamper in FAILURES.items()),
        (_from_the_future, "expired"),
        (_tampered_query, "bad-signature"),
        (_changed_signed_header, "bad-signature"),
        (_removed_signed_header, "missing-header"),
        (_host_not_signed, "unsigned-header"),
    ],
)
async def test_every_failure_is_the_same_401(
    auth_settings: Settings, access_log: RecordedAccessLog, tamper: Any, reason: str
) -> None:
    before = auth_failures(reason)
    async with serve(auth_settings) as client:
        request = client.build_request("GET", statistics_path(1), params={"campaignId": "C1"})
        response = await client.send(tamper(request))
    assert response.status_code == 401
    # Nothing in the answer tells which part was wrong...
    assert response.json() == UNAUTHORISED
    assert response.headers["WWW-Authenticate"] == "auth-v2"
    # ...the operator's metrics and access log do.
    assert auth_failures(reason) == before + 1
    assert access_log.lines[-1]["authFailure"] == reason
    assert access_log.lines[-1]["status"] == 401


async def test_a_stamp_ahead_of_the_clock_is_bounded_tighter_than_the_window(
    auth_settings: Settings,
) -> None:
    """Ten minutes ahead is inside the 15-minute window but not the 60 s of clock skew."""
    await count_events(auth_settings, campaign_events(1, "C1", ["b1"], 1, moment_ms=now_ms()))
    async with serve(auth_settings) as client:
        for ahead, status in ((timedelta(minutes=10), 401), (timedelta(seconds=30), 200)):
            request = client.build_request("GET", statistics_path(1), params={"campaignId": "C1"})
            signed(request, moment=datetime.now(UTC) + ahead)
            assert (await client.send(request)).status_code == status, ahead


async def test_a_signed_host_outside_the_public_hosts_is_refused(
    auth_settings: Settings, access_log: RecordedAccessLog
) -> None:
    """The tests' client signs ``host:127.0.0.1:8000``: it passes where the API is reached by
    that name (on that port, or on any port), and nowhere else."""
    outcomes = {}
    for public_hosts in (
        ["stats.example.com"],
        ["127.0.0.1:9000"],
        ["127.0.0.1"],
        ["127.0.0.1:8000"],
    ):
        settings = auth_settings.model_copy(update={"api_public_hosts": public_hosts})
        async with serve(settings, access_key=ACCESS_KEY, secret_key=SECRET_KEY) as client:
            outcomes[public_hosts[0]] = (await client.get(statistics_path(1))).status_code
    assert outcomes == {
        "stats.example.com": 401,
        "127.0.0.1:9000": 401,
        "127.0.0.1": 200,
        "127.0.0.1:8000": 200,
    }
    assert [line["authFailure"] for line in access_log.lines if line["status"] == 401] == [
        "wrong-host",
        "wrong-host",
    ]


async def test_the_window_is_a_setting(auth_settings: Settings) -> None:
    narrow = auth_settings.model_copy(update={"auth_window_seconds": 60})
    async with serve(narrow) as client:
        request = client.build_request("GET", statistics_path(1))
        signed(request, moment=datetime.now(UTC) - timedelta(minutes=2))
        assert (await client.send(request)).status_code == 401


async def test_probes_docs_and_metrics_need_no_signature_on_the_operations_port(
    auth_settings: Settings,
) -> None:
    """The metrics name why authentications failed and the docs every parameter: they are on
    the operations port only (api/operations.py), the probes on both."""
    async with serve_with_operations(auth_settings) as (public, operations):
        for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
            assert (await operations.get(path)).status_code == 200, path
        for path in ("/metrics", "/docs", "/openapi.json", "/redoc"):
            assert (await public.get(path)).status_code == 404, path


# --- keys and the refusal to start ----------------------------------------------------------


def test_authentication_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ISALES_AUTH_ENABLED", raising=False)
    assert Settings(_env_file=None).auth_enabled is True  # type: ignore[call-arg]


def test_keys_come_from_the_setting_and_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    file_sk, sk1, sk2 = "file-sk-0123456789", "sk1-0123456789abcd", "sk2-0123456789abcd"
    key_file.write_text(f"# issued 2026-11\nfile-ak:{file_sk} vdns=7;10-20\n", encoding="utf-8")
    settings = Settings(
        auth_keys=SecretStr(f"ak1:{sk1} vdns=1,ak2:{sk2} vdns=*"), auth_keys_file=key_file
    )
    tenant = VdnScope(ranges=((7, 7), (10, 20)))
    assert load_key_grants(settings) == {
        "ak1": KeyGrant(sk1, VdnScope(ranges=((1, 1),))),
        "ak2": KeyGrant(sk2, EVERY_VDN),
        "file-ak": KeyGrant(file_sk, tenant),
    }
    only_file = Settings(auth_keys_file=key_file)
    assert load_key_grants(only_file) == {"file-ak": KeyGrant(file_sk, tenant)}
    assert load_key_grants(Settings(auth_enabled=False)) == {}


@pytest.mark.parametrize(
    ("keys", "file_text", "message"),
    [
        ("", None, NO_KEYS_MESSAGE),
        ("", "# nothing yet\n", NO_KEYS_MESSAGE),
        ("ak1:topsecret,ak1:topsecret2", None, "ISALES_AUTH_KEYS: line 1: access key 'ak1'"),
        ("ak1", None, "ISALES_AUTH_KEYS: line 1: expected AK:SK"),
        ("ak1:topsecret vdns=1", "ak1:topsecret vdns=1", "'ak1' is in both"),
        ("", "ak1:top secret\n", "line 1: secret key for 'ak1' is empty or invalid"),
        # A key without a scope would see every tenant: it must say so explicitly.
        ("ak1:topsecret", None, "access key 'ak1' has no VDN scope"),
        ("ak1:topsecret vdns=", None, "line 1: access key 'ak1': empty VDN scope"),
        ("ak1:topsecret vdns=20-10", None, "'20-10': VDN ids go from"),
        ("ak1:topsecret vdns=1;x", None, "'x': expected a VDN id"),
        # Nine characters: guessable offline from one signed request.
        ("ak1:topsecret vdns=1", None, "key of access key 'ak1' is shorter than 16 characters"),
    ],
)
def test_unusable_keys_stop_the_app(
    tmp_path: Path, keys: str, file_text: str | None, message: str
) -> None:
    key_file = None
    if file_text is not None:
        key_file = tmp_path / "keys"
        key_file.write_text(file_text, encoding="utf-8")
    settings = Settings(auth_keys=SecretStr(keys), auth_keys_file=key_file)
    with pytest.raises(AuthConfigurationError) as caught:
        create_app(settings)
    assert message in str(caught.value)
    assert "topsecret" not in str(caught.value)
    assert "top secret" not in str(caught.value)


def test_an_unreadable_key_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file"
    with pytest.raises(AuthConfigurationError, match=r"cannot read .*no-such-file"):
        load_key_grants(Settings(auth_keys_file=missing))


def test_the_api_process_refuses_to_start_without_keys(
    test_settings: Settings, tmp_path: Path
) -> None:
    api = ServiceProcess(
        test_settings,
        "api",
        "--port",
        str(free_port()),
        log_dir=tmp_path,
        auth_enabled=True,
        auth_keys=SecretStr(""),
    )
    with api:
        assert api.process is not None
        assert api.process.wait(30) == 2
    log = api.log()
    assert "refusing to start" in log
    assert "ISALES_AUTH_KEYS" in log
    assert "ISALES_AUTH_ENABLED=false" in log
    assert "Traceback" not in log


# --- the client and the query command -------------------------------------------------------


@pytest.fixture
def api_process(auth_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    with ApiProcess(auth_settings, log_dir=tmp_path) as api:
        yield auth_settings, api.url


async def test_the_client_signs_and_reads_count_detail(api_process: tuple[Settings, str]) -> None:
    settings, base_url = api_process
    await count_events(settings, campaign_events(3, "C1", ["b1", "b2"], 4, moment_ms=now_ms()))
    with StatisticsClient(base_url, ACCESS_KEY, SECRET_KEY) as client:
        detail = client.count_detail(3, campaign_id="C1", batch_id="b2")
        assert [b["batchId"] for b in detail[0]["batchDetail"]] == ["b2"]
        with pytest.raises(StatisticsApiError) as caught:
            client.count_detail(3, batch_id="b2")
        assert caught.value.status == 400
        assert caught.value.result_code == ErrorCode.WRONG_COMBINATION.value
    with StatisticsClient(base_url) as unsigned, pytest.raises(StatisticsApiError) as refused:
        unsigned.count_detail(3)
    assert refused.value.status == 401


def run_query_command(settings: Settings, *arguments: str, **environment: str) -> Any:
    return subprocess.run(
        cli_command("query", *arguments),
        env={**os.environ, **settings.as_environment(), **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_query_command_signs_calls_and_prints(
    api_process: tuple[Settings, str],
) -> None:
    settings, base_url = api_process
    await count_events(settings, campaign_events(3, "C1", ["b1"], 4, moment_ms=now_ms()))
    keys = {"ISALES_CLIENT_ACCESS_KEY": ACCESS_KEY, "ISALES_CLIENT_SECRET_KEY": SECRET_KEY}
    done = run_query_command(settings, "--url", base_url, "--vdn", "3", "--campaign", "C1", **keys)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["countDetail"][0]["campaignId"] == "C1"

    refused = run_query_command(settings, "--url", base_url, "--vdn", "3")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["resultCode"] == ErrorCode.AUTHENTICATION_FAILED.value
    assert "HTTP 401" in refused.stderr


async def test_failures_and_history_are_signed_and_scoped_like_the_statistics(
    api_process: tuple[Settings, str],
) -> None:
    """The client's and the query command's other reads, signed; a tenant's key reads its own
    VDNs' failures and history, and gets the 401 of a bad signature for another's."""
    settings, base_url = api_process
    events = campaign_events(100, "C1", ["b1"], 6, moment_ms=now_ms())
    await count_events(settings, events)
    today = today_in(settings.time_zone_of(100))
    with StatisticsClient(base_url, TENANT_A_KEY, TENANT_A_SECRET) as client:
        (failures,) = client.fail_categories(100, "C1")
        assert failures == {
            "statDate": today.isoformat(),
            "failData": reference_statistics(events).fail_data(100, "C1", today),
        }
        hours = client.history(100, "C1", "b1", today, today, interval="hour")
        assert sum(hour["dailyCount"] for hour in hours) == 6
        with pytest.raises(StatisticsApiError) as refused:
            client.fail_categories(200, "C1")
        assert refused.value.status == 401
        with pytest.raises(StatisticsApiError) as refused:
            client.history(200, "C1")
        assert refused.value.status == 401
    keys = {"ISALES_CLIENT_ACCESS_KEY": ACCESS_KEY, "ISALES_CLIENT_SECRET_KEY": SECRET_KEY}
    common = ("--url", base_url, "--vdn", "100", "--campaign", "C1")
    fails = run_query_command(settings, *common, "--fails", **keys)
    assert fails.returncode == 0, fails.stderr
    assert json.loads(fails.stdout)["data"] == [failures]
    day = today.isoformat()
    hourly = run_query_command(
        settings, *common, "--history", "--hourly", "--from", day, "--to", day, **keys
    )
    assert hourly.returncode == 0, hourly.stderr
    assert len(json.loads(hourly.stdout)["data"]["points"]) == 24
    one_date = run_query_command(settings, *common, "--history", "--from", day, **keys)
    assert one_date.returncode == 1
    assert "startDate is given without endDate" in one_date.stdout
    dropped = run_query_command(settings, *common, "--hourly", **keys)
    assert dropped.returncode == 2
    assert "--hourly goes with --history" in dropped.stderr


def test_the_printed_curl_command_is_ready_to_paste(
    api_process: tuple[Settings, str],
) -> None:
    settings, base_url = api_process
    keys = {"ISALES_CLIENT_ACCESS_KEY": ACCESS_KEY, "ISALES_CLIENT_SECRET_KEY": SECRET_KEY}
    done = run_query_command(
        settings, "--url", base_url, "--vdn", "3", "--campaign", "C 1", "--curl", **keys
    )
    assert done.returncode == 0, done.stderr
    words = shlex.split(done.stdout)
    assert words[:2] == ["curl", "-s"]
    headers = dict(words[index + 1].split(": ", 1) for index in range(2, len(words) - 1, 2))
    assert set(headers) == {"Content-Type", "Authorization"}
    # Replayed byte for byte as curl would send it.
    response = httpx.get(words[-1], headers=headers)
    assert response.status_code == 200, response.text


def test_the_api_docs_quote_the_worked_example() -> None:
    api_docs = API_DOCS.read_text(encoding="utf-8")
    assert WORKED_EXAMPLE_AUTHORIZATION in api_docs
    for given in ("demo-ak", "demo-sk", "2026-11-28T02:30:00.000Z", "127.0.0.1:8000"):
        assert given in api_docs


def test_the_signer_of_the_client_makes_the_worked_example() -> None:
    request = httpx.Request(
        "GET",
        "http://127.0.0.1:8000/rest/isales/v2/openapi/campaigns/1/statistics?campaignId=C1",
    )
    moment = datetime(2026, 11, 28, 2, 30, tzinfo=UTC)
    flow = AkSkAuth("demo-ak", "demo-sk", clock=lambda: moment).auth_flow(request)
    assert next(flow).headers["Authorization"] == WORKED_EXAMPLE_AUTHORIZATION
    assert request.headers["Content-Type"] == "application/json; charset=UTF-8"
