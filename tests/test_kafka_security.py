"""Kafka as a company runs it: SASL_SSL only, SCRAM users, client certificates required.

The broker is the local stack's own in its secured mode (tests/support/kafka_secured.py).
Over it, the whole path: iSales' result callbacks into the API, whose receiver publishes them,
and the SDK's events, counted by the worker (SCRAM-SHA-512, mutual TLS, the password from a
file) and served by the API, exactly and with the group fully committed. The topic admin and
the publisher log in with each mechanism the settings offer. A wrong password, an untrusted
CA or a missing client certificate stops the worker, the API and ``publish`` within seconds,
with a message that names the setting to fix and never the password.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from isales_stats.client import StatisticsClient
from isales_stats.core.kafka_connection import KafkaAccessRefused, check_kafka_access
from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.publisher import EventPublisher
from tests.support.api_process import ApiProcess
from tests.support.callbacks import PATH, SUCCESS, result
from tests.support.certificates import make_certificates
from tests.support.detail import expected_detail
from tests.support.faults import assert_fully_committed, wait_until_exact
from tests.support.kafka_secured import PASSWORD, SecuredKafka, secured_kafka
from tests.support.kafka_topics import publish, read_topic
from tests.support.processes import ServiceProcess, refused_start_up, run_cli
from tests.support.streams import campaign_stream
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def secured(
    local_stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredKafka]:
    with secured_kafka(tmp_path_factory.mktemp("kafka-secured"), local_stack) as broker:
        yield broker


@pytest.fixture
def settings(secured: SecuredKafka, test_settings: Settings) -> Settings:
    return secured.settings_for(test_settings)


def test_callbacks_and_events_are_counted_and_served_over_sasl_ssl(
    settings: Settings, tmp_path: Path
) -> None:
    ensure_topics(settings)
    stream = campaign_stream(3_000, seed=47, now=datetime.now(UTC))
    expected = expected_detail(stream)
    publish(settings, stream)  # the SDK's events, VDN 1
    results = [result(f"s{n}", f"c{n}", 6 if n % 3 == 0 else 5, "00603") for n in range(12)]

    api = ApiProcess(settings, log_dir=tmp_path)
    worker = ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0)
    with api, worker, StatisticsClient(api.url) as statistics:
        for body in (results, results):  # iSales pushes again at will: counted once
            answer = httpx.post(f"{api.url}{PATH}", json=body, timeout=30)
            assert (answer.status_code, answer.json()) == (200, SUCCESS), answer.text

        def callbacks_counted() -> dict[str, Any] | None:
            detail = statistics.count_detail(11, "3")
            return detail[0] if detail and detail[0]["totalCalledCount"] == 12 else None

        served = wait_for(callbacks_counted, 60)
        assert served, worker.log()
        assert (served["totalCount"], served["totalCallSucc"]) == (12, 4)
        assert wait_until_exact(settings, expected, timeout=120), worker.log()
        assert statistics.count_detail(1) == expected
        committed = assert_fully_committed(settings, worker.log)
        logs = worker.log() + api.service.log()
    assert PASSWORD not in logs
    print(f"\n[kafka security] exact over SASL_SSL + SCRAM-SHA-512 + mTLS; {committed}")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_the_topic_admin_and_the_publisher_log_in_with_each_mechanism(
    mechanism: str, settings: Settings
) -> None:
    settings = settings.model_copy(update={"kafka_sasl_mechanism": mechanism})
    assert set(ensure_topics(settings)) == {settings.call_events_topic, settings.dead_letter_topic}
    events = campaign_stream(50, seed=3, now=datetime.now(UTC))
    with EventPublisher(settings) as publisher:
        assert publisher.publish_all(events, timeout=30) == 50
    assert len(read_topic(settings)) == 50


def test_publish_reads_its_settings_from_the_environment(
    settings: Settings, tmp_path: Path
) -> None:
    ensure_topics(settings)
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            f'{{"eventType":"data.added","vdnId":1,"campaignId":"c1","dataId":"r{n}",'
            f'"occurredAt":{int(time.time() * 1000)}}}\n'
            for n in range(20)
        )
    )
    done = run_cli(settings, "publish", str(events), "--rejects", str(tmp_path / "rejects.jsonl"))
    assert done.returncode == 0, done.stderr
    assert len(read_topic(settings)) == 20


# --- refusals: named, within seconds, never the password ----------------------------------


def refusals(settings: Settings, tmp_path: Path) -> dict[str, tuple[Settings, str]]:
    """Settings that the secured broker must refuse, each with the setting to name."""
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password-5e0f\n")
    other = make_certificates(tmp_path / "another-ca")
    return {
        "wrong password": (
            settings.model_copy(update={"kafka_password_file": wrong}),
            "ISALES_KAFKA_PASSWORD",
        ),
        "untrusted CA": (
            settings.model_copy(update={"kafka_ca_file": other["ca.crt"]}),
            "ISALES_KAFKA_CA_FILE",
        ),
        "no client certificate": (
            settings.model_copy(update={"kafka_cert_file": None, "kafka_key_file": None}),
            "ISALES_KAFKA_CERT_FILE",
        ),
        "a certificate of another CA": (
            settings.model_copy(
                update={
                    "kafka_cert_file": other["client.crt"],
                    "kafka_key_file": other["client.key"],
                }
            ),
            "ISALES_KAFKA_CERT_FILE",
        ),
        "TLS without SASL": (
            settings.model_copy(update={"kafka_security_protocol": "SSL"}),
            "ISALES_KAFKA_SECURITY_PROTOCOL",
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["wrong password", "untrusted CA", "no client certificate", "a certificate of another CA",
     "TLS without SASL"],
)  # fmt: skip
def test_the_start_up_check_names_what_is_wrong(
    case: str, settings: Settings, tmp_path: Path
) -> None:
    wrong, setting = refusals(settings, tmp_path)[case]
    with pytest.raises(KafkaAccessRefused, match=setting) as refused:
        check_kafka_access(wrong)
    assert "not-the-password" not in str(refused.value)
    assert PASSWORD not in str(refused.value)


@pytest.mark.parametrize("command", ["worker", "api"])
@pytest.mark.parametrize("case", ["wrong password", "untrusted CA"])
def test_the_worker_and_the_api_refuse_to_start(
    command: str, case: str, settings: Settings, tmp_path: Path
) -> None:
    wrong, setting = refusals(settings, tmp_path)[case]
    output = refused_start_up(wrong, command)  # exits on its own: no retrying
    assert setting in output, output[-2000:]
    assert "not-the-password" not in output
    assert PASSWORD not in output


def test_a_wrong_password_stops_the_worker_in_one_line_not_a_wait(
    settings: Settings, tmp_path: Path
) -> None:
    """The worker waits for a Kafka that does not answer (tests/test_worker_before_kafka.py),
    never for one that refuses it: one line naming the setting, no attempt repeated."""
    wrong, setting = refusals(settings, tmp_path)["wrong password"]
    done = run_cli(wrong, "worker", environment={"ISALES_WORKER_METRICS_PORT": "0"}, timeout=60)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 1, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("isales-stats worker: Kafka at "), lines
    assert setting in lines[0]


def test_publish_refuses_a_wrong_password_at_once(settings: Settings, tmp_path: Path) -> None:
    wrong, setting = refusals(settings, tmp_path)["wrong password"]
    events = tmp_path / "events.jsonl"
    events.write_text("")
    done = run_cli(wrong, "publish", str(events), "--rejects", str(tmp_path / "rejects.jsonl"))
    assert done.returncode == 2, done.stderr
    assert setting in done.stderr


def test_security_settings_that_cannot_work_are_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs ISALES_KAFKA_USERNAME and ISALES_KAFKA_PASSWORD"):
        Settings(kafka_security_protocol="SASL_SSL", kafka_username="isales")
    with pytest.raises(ValueError, match=r"ISALES_KAFKA_CA_FILE set, but .* is PLAINTEXT"):
        Settings(kafka_ca_file=tmp_path / "ca.crt")
    with pytest.raises(ValueError, match="go together"):
        Settings(kafka_security_protocol="SSL", kafka_cert_file=tmp_path / "client.crt")
    with pytest.raises(ValueError, match="kafka_sasl_mechanism"):
        Settings(kafka_sasl_mechanism="GSSAPI")  # type: ignore[arg-type]
    secret = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_username="isales",
        kafka_password=SecretStr("kafka-test-secret"),
    )
    assert "kafka-test" not in repr(secret)
    assert "kafka-test" not in str(secret.model_dump())
