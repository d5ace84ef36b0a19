"""Redis as production runs it: TLS only, an ACL user with a password (tests/support/redis_tls.py).

The worker counts into it and the API serves from it, over mutual TLS, with the password read
from a file. A wrong password or an untrusted CA stops either process at start-up within
seconds, with a message that names the setting and not the password. A Redis that hangs (a
stopped process that keeps its connections) makes the API answer 503 within its read timeout,
and the worker ride it out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess
from tests.support.app_client import JSON_HEADERS, statistics_path
from tests.support.certificates import make_certificates
from tests.support.detail import expected_detail
from tests.support.faults import assert_fully_committed, wait_until_exact
from tests.support.kafka_topics import publish
from tests.support.processes import ServiceProcess, refused_start_up
from tests.support.redis_tls import PASSWORD, TlsRedis, tls_redis
from tests.support.streams import campaign_stream

STATISTICS = statistics_path(1)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsRedis]:
    with tls_redis(tmp_path / "redis-tls") as server:
        yield server


@pytest.mark.stack
def test_the_worker_and_the_api_use_redis_over_mutual_tls_as_an_acl_user(
    tls_server: TlsRedis, test_settings: Settings, tmp_path: Path
) -> None:
    settings = tls_server.settings_for(test_settings, redis_timeout_seconds=2.0)
    stream = campaign_stream(6_000, seed=31, now=datetime.now(UTC))
    expected = expected_detail(stream)
    publish(settings, stream)

    with (
        ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as worker,
        ApiProcess(settings, log_dir=tmp_path) as api,
    ):
        assert wait_until_exact(settings, expected, timeout=120), worker.log()
        answer = httpx.get(api.url + STATISTICS, timeout=10, headers=JSON_HEADERS).json()
        assert answer["countDetail"] == expected
        assert_fully_committed(settings, worker.log)

        # Hung: the API answers 503 within its read timeout, and 200 once Redis is back.
        with tls_server.frozen():
            began = time.monotonic()
            hung = httpx.get(api.url + STATISTICS, timeout=30, headers=JSON_HEADERS)
            waited = time.monotonic() - began
        assert hung.status_code == 503, hung.text
        assert waited < 3 * settings.redis_timeout_seconds + 5, waited
        assert httpx.get(api.url + STATISTICS, timeout=10, headers=JSON_HEADERS).status_code == 200
        logs = worker.log() + api.service.log()
    assert PASSWORD not in logs
    with tls_server.client() as redis:  # the default user is off: only ours got in
        assert redis.acl_whoami() == "isales"


@pytest.mark.parametrize("command", ["worker", "api"])
def test_a_wrong_password_stops_start_up_naming_the_setting(
    command: str, tls_server: TlsRedis, test_settings: Settings, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password-91c2\n")
    settings = tls_server.settings_for(test_settings, redis_password_file=wrong)
    output = refused_start_up(settings, command)
    assert "ISALES_REDIS_PASSWORD" in output, output[-2000:]
    assert "not-the-password-91c2" not in output
    assert PASSWORD not in output


@pytest.mark.parametrize("command", ["worker", "api"])
def test_an_untrusted_ca_stops_start_up_naming_the_setting(
    command: str, tls_server: TlsRedis, test_settings: Settings, tmp_path: Path
) -> None:
    other = make_certificates(tmp_path / "another-ca")
    settings = tls_server.settings_for(test_settings, redis_ca_file=other["ca.crt"])
    output = refused_start_up(settings, command)
    assert "ISALES_REDIS_CA_FILE" in output, output[-2000:]


def test_tls_files_without_rediss_are_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ISALES_REDIS_CA_FILE set, but ISALES_REDIS_URL is not"):
        Settings(redis_url="redis://127.0.0.1:6379/0", redis_ca_file=tmp_path / "ca.crt")
    with pytest.raises(ValueError, match="go together"):
        Settings(redis_url="rediss://127.0.0.1:6379/0", redis_cert_file=tmp_path / "c.crt")
    secret = Settings(redis_password=SecretStr("tls-test-secret"))
    assert "tls-test" not in repr(secret)
    assert "tls-test" not in str(secret.model_dump())
