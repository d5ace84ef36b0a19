"""What one connection may cost the API, against a real API process and raw sockets on loopback.

A huge header is refused before it is read (431, or the connection closed) and the process'
memory does not grow; a connection that sends nothing, half a request line or half its
headers is closed within ISALES_API_HEADER_TIMEOUT_SECONDS; past ISALES_API_MAX_CONNECTIONS
a new connection gets 503. api/http_limits.py says why each bound.
"""

from __future__ import annotations

import http.client
import re
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack

HEADER_TIMEOUT = 2.0  # ISALES_API_HEADER_TIMEOUT_SECONDS of these tests
KEEP_ALIVE = 5.0  # uvicorn's keep-alive timeout, pinned in api/server.py
MARGIN = 2.0  # a loaded machine's delay in closing, on top of the documented time
MiB = 1 << 20


@pytest.fixture
def api(test_settings: Settings, tmp_path: Path) -> Iterator[ApiProcess]:
    settings = test_settings.model_copy(
        update={"api_header_timeout_seconds": HEADER_TIMEOUT, "access_log": False}
    )
    with ApiProcess(settings, log_dir=tmp_path) as process:
        yield process


def resident_mib(api: ApiProcess) -> float:
    assert api.process is not None
    status = Path(f"/proc/{api.process.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) / 1024


def refused_connections(api: ApiProcess, reason: str) -> float:
    text = httpx.get(f"{api.operations_url}/metrics", timeout=5).text
    match = re.search(
        rf'^isales_api_connections_refused_total{{reason="{reason}"}} (\S+)$', text, re.MULTILINE
    )
    return float(match.group(1)) if match else 0.0


def send_header(port: int, size: int) -> tuple[bytes, int]:
    """A request with one header of ``size`` bytes, sent as fast as the API reads it: what the
    API answered (b"" when it closed or reset the connection) and the bytes it took first.

    Stops at 32 MiB sent without an answer: the API is then reading all of it."""
    chunk = b"a" * MiB
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        try:
            while sent < size and sent < 32 * MiB:
                readable, writable, _ = select_one(client)
                if readable:
                    return client.recv(4096), sent
                assert writable, "the API neither reads nor answers"
                sent += client.send(chunk[: size - sent])
            if sent < size:
                return b"still reading", sent
            client.sendall(b"\r\n\r\n")
            return client.recv(4096), sent
        except (BrokenPipeError, ConnectionResetError):
            try:
                return client.recv(4096), sent
            except OSError:
                return b"", sent


def select_one(client: socket.socket) -> tuple[bool, bool, None]:
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ | selectors.EVENT_WRITE)
        events = selector.select(10)
    mask = events[0][1] if events else 0
    return bool(mask & selectors.EVENT_READ), bool(mask & selectors.EVENT_WRITE), None


@pytest.mark.parametrize("size", [MiB, 256 * MiB], ids=["1MiB", "256MiB"])
def test_a_huge_header_is_refused_at_once_and_costs_no_memory(api: ApiProcess, size: int) -> None:
    httpx.get(f"{api.url}/healthz", timeout=5)  # the first request's allocations made
    before = resident_mib(api)

    answer, taken = send_header(api.port, size)

    after = resident_mib(api)
    assert answer == b"" or answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), answer[:80]
    # Refused after its first 16 KiB: what it took is what the two kernels' buffers hold.
    assert taken < 32 * MiB, f"the API read {taken / MiB:.0f} MiB of the header"
    print(f"{size // MiB} MiB header: refused after {taken / MiB:.1f} MiB sent;", end=" ")
    print(f"RSS {before:.1f} -> {after:.1f} MiB")
    assert abs(after - before) < 10, (before, after)
    assert refused_connections(api, "header-too-large") >= 1
    assert httpx.get(f"{api.url}/healthz", timeout=5).status_code == 200


def test_idle_and_half_sent_connections_are_closed_within_the_timeout(api: ApiProcess) -> None:
    halves = {
        "nothing": b"",
        "half a request line": b"GET /healthz HT",
        "half the headers": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: abc",
    }
    opened: dict[socket.socket, tuple[str, float, float]] = {}  # kind, since, allowed
    for kind, half in halves.items():
        for _ in range(20):
            client = socket.create_connection(("127.0.0.1", api.port), timeout=10)
            opened[client] = (kind, time.monotonic(), HEADER_TIMEOUT)
            client.sendall(half)
    # A connection reused: one request answered, then half of the next, or nothing more.
    for kind in ("keep-alive, then half a request", "keep-alive, then nothing"):
        connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        connection.request("GET", "/healthz")
        assert connection.getresponse().read()
        client = connection.sock
        if kind.endswith("half a request"):
            client.sendall(b"GET /heal")
            opened[client] = (kind, time.monotonic(), HEADER_TIMEOUT)
        else:
            opened[client] = (kind, time.monotonic(), KEEP_ALIVE)

    closed_after = wait_closed(opened, within=KEEP_ALIVE + MARGIN)

    still_open = [opened[client][0] for client in opened if client not in closed_after]
    assert not still_open, f"{len(still_open)} connections still open: {set(still_open)}"
    for client, (kind, _, allowed) in opened.items():
        elapsed = closed_after[client]
        assert allowed - 0.1 <= elapsed <= allowed + MARGIN, (kind, elapsed)
    slowest = max(closed_after.values())
    print(f"{len(opened)} connections, each closed after its timeout; slowest {slowest:.2f} s")
    assert refused_connections(api, "header-timeout") >= 61
    assert httpx.get(f"{api.url}/healthz", timeout=5).status_code == 200


def wait_closed(
    opened: dict[socket.socket, tuple[str, float, float]], within: float
) -> dict[socket.socket, float]:
    """Each socket that the API closed within ``within`` s -> seconds from its ``since``."""
    closed: dict[socket.socket, float] = {}
    with selectors.DefaultSelector() as selector:
        opened_by_fd = {client.fileno(): client for client in opened}
        for client in opened:
            selector.register(client, selectors.EVENT_READ)
        deadline = time.monotonic() + within
        while len(closed) < len(opened) and time.monotonic() < deadline:
            for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
                client = opened_by_fd[key.fd]
                try:
                    data = client.recv(4096)
                except ConnectionResetError:
                    data = b""
                if data:  # the 408; the end follows
                    assert data.startswith(b"HTTP/1.1 408"), data[:80]
                    continue
                closed[client] = time.monotonic() - opened[client][1]
                selector.unregister(client)
    for client in opened:
        client.close()
    return closed


def test_connections_past_the_cap_get_503(test_settings: Settings, tmp_path: Path) -> None:
    cap = 8
    settings = test_settings.model_copy(update={"api_max_connections": cap, "access_log": False})
    with ApiProcess(settings, log_dir=tmp_path) as api:
        idle = [socket.create_connection(("127.0.0.1", api.port), timeout=10) for _ in range(cap)]
        try:
            with socket.create_connection(("127.0.0.1", api.port), timeout=10) as beyond:
                answer = beyond.recv(4096)
            assert answer.startswith(b"HTTP/1.1 503"), answer[:80]
            assert refused_connections(api, "connections") == 1

            idle.pop().close()  # one place free again: served
            assert wait_for(lambda: healthz_status(api) == 200, timeout=10)
        finally:
            for client in idle:
                client.close()


def healthz_status(api: ApiProcess) -> int:
    try:
        return httpx.get(f"{api.url}/healthz", timeout=5).status_code
    except httpx.HTTPError:
        return 0
