"""A notifier's metrics port (engine/health.py served with the readiness of
engine/notifications/notifier.py): the probes of deploy/k8s/notifier-deployment.yaml and of the
compose healthcheck.

A notifier has no Kafka: it is ready while Redis answers it. Checked on a real notifier process
against a Redis of the test's own, which the test then stops.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from isales_stats.core.settings import Settings
from isales_stats.engine.notifications.notifier import NotifierReadiness
from tests.support.ports import free_port
from tests.support.private_redis import private_redis
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for


def _get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.HTTPError:
        return None


def _answers(port: int, path: str, status: int) -> bool:
    response = _get(port, path)
    return response is not None and response.status_code == status


def test_a_notifier_is_ready_while_redis_answers_it(
    test_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    with private_redis(test_settings, tmp_path) as (settings, server):
        notifier = ServiceProcess(
            settings,
            "notifier",
            log_dir=tmp_path,
            notifier_metrics_port=port,
            notifier_metrics_host="127.0.0.1",
            notifier_lease_seconds=2.0,
        ).start()
        try:
            assert wait_for(lambda: _answers(port, "/readyz", 200), 30), notifier.log()
            ready = _get(port, "/readyz")
            assert ready is not None
            assert ready.text == "ready\n"
            assert "Kafka" not in ready.text
            metrics = _get(port, "/metrics")
            assert metrics is not None
            assert "isales_notifier_shards_held" in metrics.text
            server.process.stop()  # Redis gone: alive, but no longer ready
            assert wait_for(lambda: _answers(port, "/readyz", 503), 30), notifier.log()
            not_ready = _get(port, "/readyz")
            assert not_ready is not None
            assert "Redis has not answered" in not_ready.text
            assert _answers(port, "/healthz", 200)
        finally:
            notifier.stop()


def test_readiness_waits_for_a_first_answer_and_lapses_after_a_lease() -> None:
    readiness = NotifierReadiness(lease_seconds=10.0)
    ready, text = readiness()
    assert not ready
    assert "waiting for Redis (ISALES_REDIS_URL)" in text
    readiness.redis_answered()
    assert readiness() == (True, "ready\n")
    readiness.answered_at = time.monotonic() - 11.0  # the last answer, a lease ago
    ready, text = readiness()
    assert not ready
    assert "Redis has not answered for 11 s" in text
