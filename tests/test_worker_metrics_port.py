"""The worker's metrics port (engine/health.py): the address it is told, and bounded.

The server the worker runs, in this process over raw loopback sockets: it listens on the host
it is given and nowhere else, closes a connection that sends nothing or half a request within
its timeout, and many connections cost no more threads and no more than its cap.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from isales_stats.engine import health
from tests.support.waiting import wait_for

TIMEOUT = 1.0  # the server's timeout in these tests (TIMEOUT_SECONDS in production)
MARGIN = 2.0
CAP = 4


@pytest.fixture
def server() -> Iterator[health.MetricsServer]:
    running = health.MetricsServer(
        "127.0.0.1", 0, timeout_seconds=TIMEOUT, max_connections=CAP
    ).start()
    yield running
    running.stop()


def refused(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "isales_worker_metrics_connections_refused_total", {"reason": reason}
    )
    return value or 0.0


def test_it_listens_on_the_host_it_is_given_only() -> None:
    # 127.0.0.2 is loopback too on Linux, but another address: 127.0.0.1 must not answer.
    elsewhere = health.MetricsServer("127.0.0.2", 0).start()
    try:
        host, port = elsewhere.address
        assert host == "127.0.0.2"
        assert httpx.get(f"http://127.0.0.2:{port}/healthz", timeout=5).text == "alive\n"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        elsewhere.stop()


def test_it_serves_metrics_and_the_probes(server: health.MetricsServer) -> None:
    _, port = server.address
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert re.search(r"^isales_events_counted_total ", metrics.text, re.MULTILINE)
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text == "alive\n"
    assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code in (200, 503)


@pytest.mark.parametrize(
    "half",
    [b"", b"GET /metr", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"],
    ids=["nothing", "line", "headers"],
)
def test_a_silent_or_half_sent_connection_is_closed_after_the_timeout(
    server: health.MetricsServer, half: bytes
) -> None:
    _, port = server.address
    timeouts = refused("timeout")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT + MARGIN) as client:
        began = time.monotonic()
        client.sendall(half)
        assert client.recv(4096) == b""  # closed, without an answer
        elapsed = time.monotonic() - began
    assert TIMEOUT - 0.1 <= elapsed <= TIMEOUT + MARGIN, elapsed
    assert refused("timeout") == timeouts + 1


def test_many_connections_cost_no_thread_and_no_more_than_the_cap(
    server: health.MetricsServer,
) -> None:
    _, port = server.address
    threads = threading.active_count()
    over_cap = refused("connections")
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(50)]
    try:
        # The first CAP are held (until their timeout); every one beyond is closed at once.
        closed = [client for client in clients[CAP:] if client.recv(4096) == b""]
        assert len(closed) == 50 - CAP
        assert threading.active_count() == threads
        assert wait_for(lambda: refused("connections") == over_cap + 50 - CAP, timeout=5)
        assert server.open_connections == CAP
    finally:
        for client in clients:
            client.close()
    # Once they are gone, a scrape is served again.
    assert wait_for(lambda: server.open_connections == 0, timeout=TIMEOUT + MARGIN)
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
