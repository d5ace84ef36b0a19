"""The worker's wait for Kafka: what it retries, what stops it, and how it reads addresses.

A broker that accepts connections before it answers them (Kafka while it starts) is stood in
for by a real listening socket that never answers: with TLS or SASL the access check times out
on it, and the wait must retry, not stop. A real worker process is held waiting (nothing
listening, or a replication factor the one-node local stack cannot place) to show that it
keeps waiting, and that SIGTERM ends it at once even when it runs as a container's PID 1.
Only "no active controller yet", which a running cluster cannot be made to say on demand, is
raised by a stand-in for the topic admin.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydantic import SecretStr

from isales_stats.core.kafka_connection import (
    KafkaAccessRefused,
    KafkaNotAnswering,
    check_kafka_access,
    kafka_address,
)
from isales_stats.core.settings import Settings
from isales_stats.engine import kafka_wait
from isales_stats.engine.kafka_wait import wait_for_kafka
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, cli_command
from tests.support.waiting import wait_for

SHORT_TIMEOUT = 0.5  # the access check's, against a listener that never answers


class StopWaiting(Exception):
    """Raised by the test's ``sleep``: the wait decided to try again, which is all we ask."""


def stop_at_first_pause(seconds: float) -> None:
    raise StopWaiting(seconds)


@pytest.fixture(params=["127.0.0.1", "::1"])
def silent_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """``host:port`` (``[::1]:port`` for IPv6) of a listener that takes connections (the
    kernel's backlog completes the handshake) and never reads or answers on them."""
    host: str = request.param
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as listener:
        listener.bind((host, 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        yield f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def secured(server: str, protocol: Literal["SASL_SSL", "SASL_PLAINTEXT"]) -> Settings:
    return Settings(
        kafka_url=f"kafka://{server}",
        kafka_security_protocol=protocol,
        kafka_username="isales",
        kafka_password=SecretStr("not-a-real-password"),
    )


# --- a broker that accepts but does not answer yet: retried -------------------------------


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_a_broker_that_accepts_but_does_not_answer_is_not_answering_not_refused(
    silent_server: str, protocol: Literal["SASL_SSL", "SASL_PLAINTEXT"]
) -> None:
    with pytest.raises(KafkaNotAnswering, match=r"accepted a connection but") as raised:
        check_kafka_access(secured(silent_server, protocol), timeout=SHORT_TIMEOUT)
    assert not isinstance(raised.value, KafkaAccessRefused)


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_the_wait_retries_a_broker_that_does_not_answer_yet(
    silent_server: str, protocol: Literal["SASL_SSL", "SASL_PLAINTEXT"]
) -> None:
    said: list[str] = []
    with pytest.raises(StopWaiting):  # the wait paused to try again: it did not stop
        wait_for_kafka(
            secured(silent_server, protocol),
            said.append,
            sleep=stop_at_first_pause,
            access_timeout=SHORT_TIMEOUT,
        )
    assert len(said) == 1, said
    assert "accepted a connection but" in said[0]
    assert "attempt 1, next in 1 s" in said[0]


# --- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "address"),
    [
        ("kafka", ("kafka", 9092)),
        ("kafka-1.internal:19093", ("kafka-1.internal", 19093)),
        ("10.0.0.7", ("10.0.0.7", 9092)),
        ("[::1]:9092", ("::1", 9092)),
        ("[fd00::7]", ("fd00::7", 9092)),
    ],
)
def test_a_kafka_address_is_host_and_port_with_9092_by_default(
    server: str, address: tuple[str, int]
) -> None:
    assert kafka_address(server) == address


@pytest.mark.parametrize("server", ["kafka:ninety", "kafka:99999", ":9092"])
def test_an_address_that_is_not_host_and_port_names_the_setting(server: str) -> None:
    with pytest.raises(ValueError, match="ISALES_KAFKA_URL"):
        kafka_address(server)


def test_a_bracketed_ipv6_address_is_reached() -> None:
    with socket.socket(socket.AF_INET6) as listener:
        listener.bind(("::1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        assert kafka_wait._any_server_accepts([f"[::1]:{port}"])


def test_an_address_without_a_port_is_waited_for_not_a_crash() -> None:
    settings = Settings(kafka_url="kafka://kafka.invalid")  # never resolves (RFC 2606)
    said: list[str] = []
    with pytest.raises(StopWaiting):
        wait_for_kafka(settings, said.append, sleep=stop_at_first_pause)
    assert said == [
        "waiting for Kafka at kafka.invalid (ISALES_KAFKA_URL): nothing accepts a connection; "
        "attempt 1, next in 1 s"
    ]


# --- a cluster still gathering its brokers: retried ------------------------------------------


@pytest.mark.stack
def test_too_few_brokers_for_the_replication_factor_keeps_the_worker_waiting(
    test_settings: Settings, tmp_path: Path
) -> None:
    """The local stack is one broker: two replicas cannot be placed, as on a fresh
    three-broker cluster whose brokers have not all registered yet."""
    worker = ServiceProcess(
        test_settings, "worker", log_dir=tmp_path, topic_replication_factor=2, worker_metrics_port=0
    )
    with worker:

        def replica_lines() -> list[str]:
            return [
                line
                for line in worker.log().splitlines()
                if "waiting for Kafka" in line and "ISALES_TOPIC_REPLICATION_FACTOR=2" in line
            ]

        assert wait_for(lambda: len(replica_lines()) >= 2, 60), worker.log()
        assert worker.process is not None
        assert worker.process.poll() is None, worker.log()  # still waiting, not exited
        assert "Traceback" not in worker.log()
        assert "making the topics failed" not in worker.log()


@pytest.mark.stack
def test_no_active_controller_yet_is_retried(
    local_stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_controller_yet(settings: Settings) -> list[str]:
        raise RuntimeError("Failed to find active controller id!")

    monkeypatch.setattr(kafka_wait, "ensure_topics", no_controller_yet)
    assert kafka_wait._attempt(local_stack) == (
        "no active controller yet (the cluster is electing one)"
    )

    def another_failure(settings: Settings) -> list[str]:
        raise RuntimeError("something else")

    monkeypatch.setattr(kafka_wait, "ensure_topics", another_failure)
    with pytest.raises(RuntimeError, match="something else"):
        kafka_wait._attempt(local_stack)


# --- stopping a waiting worker ------------------------------------------------------------


@pytest.mark.stack
def test_sigterm_stops_a_waiting_worker_at_once_even_as_pid_1(
    test_settings: Settings, tmp_path: Path
) -> None:
    """The worker starts with SIGTERM ignored, as the kernel treats a signal sent to a
    container's PID 1 that has no handler for it; only a handler of its own lets it go."""
    settings = test_settings.model_copy(
        update={"kafka_url": f"kafka://127.0.0.1:{free_port()}", "worker_metrics_port": 0}
    )
    log_path = tmp_path / "worker.log"
    ignoring_sigterm = ["sh", "-c", f"trap '' TERM; exec {shlex.join(cli_command('worker'))}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ignoring_sigterm,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **settings.as_environment()},
        )
    try:
        assert wait_for(lambda: "waiting for Kafka" in log_path.read_text(), 60), (
            log_path.read_text()
        )
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=10)  # k8s would SIGKILL after 30 s
        output = log_path.read_text()
        assert returncode == 143, output
        assert "Traceback" not in output
        assert output.splitlines()[-1] == (
            "isales-stats worker: stopped by SIGTERM before counting began"
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
