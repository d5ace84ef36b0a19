"""The worker's metrics port (engine/health.py): the address it is told, and bounded.

The server the worker runs, in this process over raw loopback sockets: it listens on the host
it is given and nowhere else, closes a connection that sends nothing or half a request within
its timeout, and many connections cost no more threads and no more than its cap; stopping it
ends every connection it holds, leaving no task behind.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import re
import socket
import struct
import termios
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

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


class _LargeMetric:
    """A collector whose one sample carries ``size`` bytes: an answer larger than what the
    kernels' buffers hold, so that a client that does not read it leaves bytes unsent."""

    def __init__(self, size: int) -> None:
        self.size = size

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("isales_test_large", "A large sample", labels=["blob"])
        family.add_metric(["a" * self.size], 1.0)
        yield family


def bytes_waiting(client: socket.socket) -> int:
    """The bytes the kernel holds for ``client`` to read."""
    return int(struct.unpack("i", fcntl.ioctl(client, termios.FIONREAD, b"\0" * 4))[0])


def closed_by_server(client: socket.socket) -> bool:
    """Read ``client`` to its end: True once the server closed or reset it (within the
    socket's timeout), False if it stays open."""
    try:
        for _ in range(10_000):
            if not client.recv(1 << 20):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def test_stopping_ends_the_connections_it_holds_and_leaves_no_task_pending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    large = _LargeMetric(8 << 20)  # above the loopback's send and receive buffers together
    REGISTRY.register(large)
    running = health.MetricsServer("127.0.0.1", 0, timeout_seconds=60).start()
    _, port = running.address
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)
    not_reading = socket.socket()
    not_reading.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    not_reading.settimeout(5)
    try:
        idle.sendall(b"GET /metr")  # its handler waits for the rest of the head
        not_reading.connect(("127.0.0.1", port))
        not_reading.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        # The answer has begun: its handler waits to hand the kernel the rest of it.
        assert wait_for(lambda: bytes_waiting(not_reading) > 0, timeout=10)
        assert wait_for(lambda: running.open_connections == 2, timeout=5)

        with caplog.at_level(logging.ERROR, logger="asyncio"):
            running.stop()
            gc.collect()  # a task left pending is reported when it is collected

        assert "Task was destroyed but it is pending" not in caplog.text, caplog.text
        assert closed_by_server(idle)
        assert closed_by_server(not_reading)
    finally:
        REGISTRY.unregister(large)
        idle.close()
        not_reading.close()
