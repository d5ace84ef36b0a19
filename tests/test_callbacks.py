"""The iSales result-callback receiver: the mapping, the HTTP answers, and Kafka going away."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from isales_stats.client import STATISTICS_PATH, AkSkAuth, StatisticsClient
from isales_stats.commands.stack.kafka import KafkaBroker
from isales_stats.core.events import CallEvent, EventKind
from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.callbacks import (
    InvalidCallback,
    call_result_event,
    call_results_to_events,
)
from tests.support.api_process import ApiProcess
from tests.support.app_client import serve
from tests.support.callbacks import GMT8, PATH, SUCCESS, local_time, result
from tests.support.credentials import ACCESS_KEY, SECRET_KEY, TEST_KEYS
from tests.support.kafka_topics import read_topic
from tests.support.ports import free_port_pair
from tests.support.private_redis import private_redis
from tests.support.processes import ServiceProcess, run_cli
from tests.support.waiting import wait_for


def zone_of(vdn_id: int) -> timezone:
    return timezone(timedelta(hours=5, minutes=30)) if vdn_id == 12 else GMT8


# --- the mapping ------------------------------------------------------------------------------


def test_a_call_result_becomes_a_call_result_event() -> None:
    element = result("1202_test013", "0023-134864174", callTimeStr="2020-08-30 20:00:00")
    assert call_result_event(element, zone_of) == CallEvent(
        EventKind.CALL_RESULT,
        vdn_id=11,
        campaign_id="3",
        data_id="1202_test013",
        occurred_at_ms=int(datetime(2020, 8, 30, 12, 0, tzinfo=UTC).timestamp() * 1000),
        batch_id="batch-7",
        call_id="0023-134864174",
        connected=True,
        final=True,
        fail_code="0",
    )


def test_call_time_is_read_in_the_vdns_zone() -> None:
    element = result("s", "c", vdnId=12, callTimeStr="2020-08-30 20:00:00")
    event = call_result_event(element, zone_of)
    assert event.occurred_at_ms == int(datetime(2020, 8, 30, 14, 30, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("status", "fail_code", "explicit", "final"),
    [
        (6, "00000", None, True),  # connected
        (5, "00603", None, False),  # no answer: iSales may retry
        (5, "00538", None, True),  # wrong number: in the no-retry list
        (5, "00603", True, True),  # the pusher knows the retries are used up
        (6, "00000", False, False),  # an explicit field wins either way
    ],
)
def test_the_final_rule(status: int, fail_code: str, explicit: bool | None, final: bool) -> None:
    extra = {} if explicit is None else {"final": explicit}
    element = result("s", "c", status, fail_code, **extra)
    assert call_result_event(element, zone_of, {"00538"}).final is final


def test_numbers_written_as_strings_and_no_batch_are_accepted() -> None:
    element = result("s", "c", vdnId="11", campaignId=3, callStatus="5", customField="")
    event = call_result_event(element, zone_of)
    assert (event.vdn_id, event.campaign_id, event.connected, event.batch_id) == (
        11,
        "3",
        False,
        None,
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"sessionId": "s"}, "the body must be a JSON array"),
        ([result("a", "1"), "x"], r"call result \[1\]: a call result must be a JSON object"),
        ([result("a", "1"), result(None, "2")], r"\[1\]: sessionId must be a string"),
        ([result("a", "1", callTimeStr="30/08/2020 20:00")], r"\[0\]: callTimeStr must look like"),
        # Before year 1 in UTC once GMT+08:00 is taken off (was an OverflowError, a 500).
        ([result("a", "1", callTimeStr="0001-01-01 00:00:00")], r"\[0\]: .* out of range"),
        ([result("a", "1", callTimeStr="1969-12-31 23:00:00")], r"\[0\]: .* out of range"),
        ([result("a", "1", status=3)], r"\[0\]: callStatus must be 6"),
        ([result("a", "1", vdnId=0)], r"\[0\]: vdnId must be 1..9999"),
        ([result("a", None)], r"\[0\]: callId must be a string"),
        ([result("a", "1", customField="x" * 201)], r"\[0\]: customField is longer than 200"),
        ([result("a", "1", final="yes")], r"\[0\]: final must be true or false"),
    ],
)
def test_a_malformed_body_is_refused_saying_where(body: Any, reason: str) -> None:
    with pytest.raises(InvalidCallback, match=reason):
        call_results_to_events(body, zone_of)


# --- the endpoint, in-process, on the real Kafka ------------------------------------------------


def post(settings: Settings, body: Any, **request: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        async with serve(settings) as client:
            content = body if isinstance(body, bytes) else None
            json_body = None if isinstance(body, bytes) else body
            return await client.post(
                request.pop("path", PATH), content=content, json=json_body, **request
            )

    return asyncio.run(send())


@pytest.mark.stack
def test_accepted_results_are_on_kafka_before_the_answer(test_settings: Settings) -> None:
    ensure_topics(test_settings)
    body = [result("s1", "c1"), result("s2", "c2", 5, "00603"), result("s3", "c3", 5, "00538")]

    response = post(test_settings, body)

    assert (response.status_code, response.json()) == (200, SUCCESS)
    landed = {value["callId"]: value for _, value in read_topic(test_settings, timeout=5)}
    assert sorted(landed) == ["c1", "c2", "c3"]
    assert {key for key, _ in read_topic(test_settings, timeout=5)} == {b"11:3"}
    assert landed["c2"] == {
        "version": 1, "eventType": "call.result", "vdnId": 11, "campaignId": "3",
        "dataId": "s2", "batchId": "batch-7", "callId": "c2", "callStatus": 5,
        "failCode": "00603", "final": False, "occurredAt": landed["c2"]["occurredAt"],
    }  # fmt: skip
    assert [landed[call]["final"] for call in ("c1", "c2", "c3")] == [True, False, True]


@pytest.mark.stack
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[{", "not JSON"),
        ([result("s1", "c1"), result("s2", "c2", status=9)], r"call result [1]: callStatus"),
        (
            [result("s1", "c1"), result("s2", "c2", callTimeStr=local_time(-60))],
            r"call result [1]: callTimeStr is",
        ),
    ],
)
def test_a_malformed_body_gets_400_and_nothing_is_published(
    test_settings: Settings, body: Any, reason: str
) -> None:
    ensure_topics(test_settings)
    response = post(test_settings, body)
    assert response.status_code == 400
    assert response.json()["retCode"] != "0"
    assert reason in response.json()["retMsg"]
    assert read_topic(test_settings, timeout=5) == []


@pytest.mark.stack
def test_the_path_is_configurable_and_an_empty_array_is_fine(test_settings: Settings) -> None:
    settings = test_settings.model_copy(update={"callback_path": "/hooks/isales"})
    assert post(settings, [], path="/hooks/isales").json() == SUCCESS
    assert post(settings, [], path=PATH).status_code == 404


@pytest.mark.stack
def test_the_endpoint_wants_a_signature_or_the_token(test_settings: Settings) -> None:
    ensure_topics(test_settings)
    settings = test_settings.model_copy(
        update={
            "auth_enabled": True,
            "auth_keys": SecretStr(TEST_KEYS),
            "callback_tokens": SecretStr("s3cret-token-of-vdn-11 vdns=11"),
        }
    )
    body = [result("s1", "c1")]
    assert post(settings, body).status_code == 401
    assert post(settings, body, params={"token": "wrong"}).status_code == 401
    assert post(settings, body, headers={"X-Callback-Token": "wrong"}).status_code == 401
    token = "s3cret-token-of-vdn-11"
    assert post(settings, body, params={"token": token}).json() == SUCCESS
    assert post(settings, body, headers={"X-Callback-Token": token}).json() == SUCCESS
    assert post(settings, body, auth=AkSkAuth(ACCESS_KEY, SECRET_KEY)).json() == SUCCESS
    assert post(settings, body, auth=AkSkAuth(ACCESS_KEY, "not-the-secret")).status_code == 401
    # Without the token setting, a signature is the only way in.
    signed_only = settings.model_copy(update={"callback_tokens": SecretStr("")})
    assert post(signed_only, body, params={"token": ""}).status_code == 401
    assert post(signed_only, body, auth=AkSkAuth(ACCESS_KEY, SECRET_KEY)).json() == SUCCESS


@pytest.mark.stack
def test_a_callback_goes_on_unchecked_while_redis_is_down(
    test_settings: Settings, tmp_path: Path
) -> None:
    """Redis keeps the replay markers and budgets, Kafka the results: without Redis a callback is
    published unchecked (counted), not refused, and no call result is lost."""
    ensure_topics(test_settings)
    token = "s3cret-token-of-vdn-11"
    unchecked = "isales_api_callbacks_admission_unchecked_total"
    with private_redis(test_settings, tmp_path) as (own, server):
        settings = own.model_copy(
            update={
                "auth_enabled": True,
                "auth_keys": SecretStr(TEST_KEYS),
                "callback_tokens": SecretStr(f"{token} vdns=11"),
            }
        )

        async def push_without_redis() -> tuple[httpx.Response, float]:
            async with serve(settings) as client:
                server.process.stop()
                before = REGISTRY.get_sample_value(unchecked) or 0.0
                response = await client.post(
                    PATH, json=[result("s1", "c1")], params={"token": token}
                )
                return response, (REGISTRY.get_sample_value(unchecked) or 0.0) - before

        response, counted = asyncio.run(push_without_redis())
    assert (response.status_code, response.json()) == (200, SUCCESS)
    assert counted == 1
    assert [value["callId"] for _, value in read_topic(test_settings, timeout=5)] == ["c1"]


@pytest.mark.stack
def test_the_api_starts_while_a_secured_kafka_does_not_answer_yet(
    test_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker still starting takes connections and answers nothing: the API's start-up login
    must not stop it (statistics need no Kafka), only say so."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        settings = test_settings.model_copy(
            update={
                "kafka_url": f"kafka://127.0.0.1:{listener.getsockname()[1]}",
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_username": "isales",
                "kafka_password": SecretStr("not-a-real-password"),
            }
        )

        async def read_statistics() -> int:
            async with serve(settings) as client:
                return (await client.get(STATISTICS_PATH.format(vdn_id=1))).status_code

        assert asyncio.run(read_statistics()) == 200
    assert "Kafka does not answer yet" in caplog.text


# --- end to end: iSales -> API -> Kafka -> worker -> statistics ---------------------------------


@pytest.mark.stack
def test_pushed_results_are_counted_once_however_often_pushed(
    test_settings: Settings, tmp_path: Path
) -> None:
    ensure_topics(test_settings)
    first = [result(f"s{n}", f"c{n}", 6 if n % 3 == 0 else 5, "00603") for n in range(12)]
    retries = [result(f"s{n}", f"r{n}", 6, "00000") for n in range(1, 3)]
    api = ApiProcess(test_settings, log_dir=tmp_path)
    worker = ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0)
    with api, worker, StatisticsClient(api.url) as statistics:
        for body in (first, first, retries, first):  # iSales pushes again at will
            answer = httpx.post(f"{api.url}{PATH}", json=body, timeout=30)
            assert (answer.status_code, answer.json()) == (200, SUCCESS)

        def campaign() -> dict[str, Any] | None:
            detail = statistics.count_detail(11, "3")
            return detail[0] if detail and detail[0]["totalCalledCount"] == 14 else None

        served = wait_for(campaign, 60)
        assert served, f"{statistics.count_detail(11)}\n{worker.log()}"
        # 12 records called once (4 connected), two of the failed ones called again and connected.
        expected = {
            "totalCount": 12, "unCallCount": 0, "totalCalledCount": 14, "totalCallSucc": 6,
            "totalFinishCount": 6, "dailyCalledCount": 14, "dailyCallSucc": 6,
            "dailyFinishCount": 6, "dailyCount": 12,
        }  # fmt: skip
        assert {name: served[name] for name in expected} == expected
        assert [batch["batchId"] for batch in served["batchDetail"]] == ["batch-7"]


class PrivateKafka:
    """A second broker, on ports of its own, that a test may stop: never the shared one.

    Started by ``isales-stats stack up`` in a child process, as a user would (and so that the
    polling of a broker still starting happens there); stopped by its pid file.
    """

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        stack_dir = tmp_path / "stack"
        version_dir = stack_dir / f"kafka-{settings.kafka_version}"
        version_dir.mkdir(parents=True)
        # The jars are the shared stack's (fetched once); the data and the logs are the test's.
        shared_jars = settings.stack_dir / f"kafka-{settings.kafka_version}" / "jars"
        (version_dir / "jars").symlink_to(shared_jars)
        self.settings = settings.model_copy(
            update={"kafka_url": f"kafka://127.0.0.1:{free_port_pair()}", "stack_dir": stack_dir}
        )

    def start(self) -> None:
        started = run_cli(self.settings, "stack", "up")
        assert started.returncode == 0, started.stdout + started.stderr
        assert "kafka: started" in started.stdout  # ours, not a broker that was already there

    def stop(self) -> None:
        KafkaBroker(self.settings).stop()


@pytest.fixture
def private_kafka(test_settings: Settings, tmp_path: Path) -> Iterator[PrivateKafka]:
    broker = PrivateKafka(test_settings, tmp_path)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.stack
def test_while_kafka_is_down_pushes_fail_and_nothing_is_lost(
    private_kafka: PrivateKafka, tmp_path: Path
) -> None:
    broker = private_kafka
    settings = broker.settings.model_copy(update={"callback_ack_timeout_seconds": 3.0})
    api = ApiProcess(settings, log_dir=tmp_path)
    morning = [result(f"m{n}", f"mc{n}", 6 if n % 2 else 5, "00603") for n in range(10)]
    noon = [result(f"n{n}", f"nc{n}", 6, "00000") for n in range(10)]
    evening = [result(f"e{n}", f"ec{n}", 5, "00538") for n in range(10)]

    def push(body: list[Any]) -> int:
        return httpx.post(f"{api.url}{PATH}", json=body, timeout=30).status_code

    def push_until_accepted(body: list[Any]) -> bool:
        """What iSales does: push again after a failure (here every second)."""
        return bool(wait_for(lambda: push(body) == 200, timeout=60, interval=1))

    with api:
        # Kafka has not started yet: the API serves, the callback is refused in time.
        began = time.monotonic()
        assert push(morning) == 503
        assert time.monotonic() - began < 15

        broker.start()
        ensure_topics(settings)
        assert push_until_accepted(morning), api.log()

        broker.stop()
        assert push(noon) == 503  # not acknowledged: iSales will push it again
        assert push(noon) == 503

        broker.start()
        assert push_until_accepted(noon), api.log()
        assert push(evening) == 200

        # Counted once each, whatever reached Kafka during the failed pushes.
        worker = ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0)
        with worker, StatisticsClient(api.url) as statistics:

            def campaign() -> dict[str, Any] | None:
                detail = statistics.count_detail(11, "3")
                return detail[0] if detail and detail[0]["totalCalledCount"] >= 30 else None

            served = wait_for(campaign, 60)
            assert served, f"{statistics.count_detail(11)}\n{worker.log()}"
    assert (served["totalCount"], served["totalCalledCount"]) == (30, 30)
    assert (served["totalCallSucc"], served["totalFinishCount"]) == (15, 25)
    landed = [value["callId"] for _, value in read_topic(settings, timeout=10)]
    assert set(landed) == {event["callId"] for event in morning + noon + evening}
