"""A worker started before its Kafka: it waits, a line per attempt, then counts exactly.

The broker is a private one (the stack's own ``KafkaBroker``, on a free port and in its own
directory), started only once the worker has said it is waiting. Until then the worker's
``/readyz`` answers 503 and its ``/healthz`` 200 (alive: an orchestrator must not restart it);
once the broker answers, the worker makes the topics, becomes ready, counts a stream exactly
and commits it to the log end. kafka-python's admin used to give up after its 30 s bootstrap
with a 39-line traceback instead.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from isales_stats.commands.stack.kafka import KafkaBroker
from isales_stats.core.settings import Settings
from tests.support.detail import expected_detail
from tests.support.faults import assert_fully_committed, wait_until_exact
from tests.support.kafka_topics import publish
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import ServiceProcess
from tests.support.streams import campaign_stream
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack

WAITING = re.compile(
    r"^isales-stats worker: waiting for Kafka at 127\.0\.0\.1:\d+ \(ISALES_KAFKA_URL\): "
    r".+; attempt (\d+), next in \d+ s$"
)


@pytest.fixture
def later_broker(test_settings: Settings) -> Iterator[KafkaBroker]:
    """A broker on a free port of its own, not started: the test starts it when it is ready."""
    broker = KafkaBroker(
        test_settings.model_copy(update={"kafka_url": f"kafka://127.0.0.1:{free_port_pair()}"})
    )
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.home, ignore_errors=True)


def readyz(port: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    except httpx.HTTPError:
        return None


def test_a_worker_started_before_kafka_waits_then_counts_exactly(
    later_broker: KafkaBroker, tmp_path: Path
) -> None:
    settings = later_broker.settings
    stream = campaign_stream(3_000, seed=26, now=datetime.now(UTC))
    port = free_port()
    with ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=port) as w:

        def waiting_lines() -> list[str]:
            return [line for line in w.log().splitlines() if "waiting for Kafka" in line]

        assert wait_for(lambda: len(waiting_lines()) >= 3, 60), w.log()
        before = w.log().splitlines()
        # Nothing else said while it waits, each attempt one line, numbered in turn.
        attempts = [WAITING.match(line) for line in before]
        assert all(attempts), before
        assert [int(match[1]) for match in attempts if match] == list(range(1, len(before) + 1))
        not_ready = readyz(port)
        assert not_ready is not None
        assert not_ready.status_code == 503, not_ready.text
        assert "waiting for Kafka" in not_ready.text
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        assert w.process is not None
        assert w.process.poll() is None, w.log()

        later_broker.ensure_running()
        ready = wait_for(lambda: (r := readyz(port)) is not None and r.status_code == 200, 120)
        assert ready, w.log()
        publish(settings, stream)
        assert wait_until_exact(settings, expected_detail(stream), timeout=120), w.log()
        print(assert_fully_committed(settings, w.log))
        print(f"{len(waiting_lines())} attempts said, one line each, before Kafka answered")
        assert "Traceback" not in w.log()
