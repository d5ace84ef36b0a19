"""What one connection may cost the API, against a real API process and raw sockets on loopback.

A huge header is refused before it is read (431, or the connection closed) and the process'
memory does not grow; a connection that sends nothing, half a request line or half its
headers is closed within ISALES_API_HEADER_TIMEOUT_SECONDS; a body that stops arriving is
closed within ISALES_API_BODY_IDLE_TIMEOUT_SECONDS, one that trickles on is read; past
ISALES_API_MAX_CONNECTIONS a new connection gets 503, and the connections admitted are served
through a burst of refusals; a refusal never lands inside a response still being sent (a push
stream followed by part of a pipelined request). api/http_limits.py says why each bound.
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
from pydantic import SecretStr

from isales_stats.core.interface import STATISTICS_PATH, STREAM_PATH
from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess
from tests.support.credentials import TEST_KEYS
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack

HEADER_TIMEOUT = 2.0  # ISALES_API_HEADER_TIMEOUT_SECONDS of these tests
BODY_IDLE_TIMEOUT = 2.0  # ISALES_API_BODY_IDLE_TIMEOUT_SECONDS of these tests
HEARTBEAT = 0.5  # ISALES_PUSH_HEARTBEAT_SECONDS of the push stream's test
KEEP_ALIVE = 5.0  # uvicorn's keep-alive timeout, pinned in api/server.py
MARGIN = 2.0  # a loaded machine's delay in closing, on top of the documented time
MiB = 1 << 20


@pytest.fixture
def api(test_settings: Settings, tmp_path: Path) -> Iterator[ApiProcess]:
    settings = test_settings.model_copy(
        update={
            "api_header_timeout_seconds": HEADER_TIMEOUT,
            "api_body_idle_timeout_seconds": BODY_IDLE_TIMEOUT,
            "push_heartbeat_seconds": HEARTBEAT,
            "access_log": False,
        }
    )
    with ApiProcess(settings, log_dir=tmp_path) as process:
        yield process


def resident_mib(api: ApiProcess) -> float:
    assert api.process is not None
    status = Path(f"/proc/{api.process.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) / 1024


def refused_connections(api: ApiProcess, reason: str, port: str = "public") -> float:
    text = httpx.get(f"{api.operations_url}/metrics", timeout=5).text
    labels = f'port="{port}",reason="{reason}"'
    match = re.search(
        rf"^isales_api_connections_refused_total{{{labels}}} (\S+)$", text, re.MULTILINE
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
    # The operations port is bounded alike, and counted apart.
    operations = socket.create_connection(("127.0.0.1", api.operations_port), timeout=10)
    opened[operations] = ("operations port, half a request", time.monotonic(), HEADER_TIMEOUT)
    operations.sendall(b"GET /metr")
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
    assert refused_connections(api, "header-timeout", port="operations") == 1
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


def test_connections_admitted_are_served_through_a_burst_of_refusals(
    test_settings: Settings, tmp_path: Path
) -> None:
    cap, beyond, rounds = 8, 40, 10
    settings = test_settings.model_copy(update={"api_max_connections": cap, "access_log": False})
    with ApiProcess(settings, log_dir=tmp_path) as api:
        admitted = [
            socket.create_connection(("127.0.0.1", api.port), timeout=10) for _ in range(cap)
        ]
        refused: list[socket.socket] = []
        try:
            for client in admitted:  # each one served once: all of them are in
                client.sendall(HEALTHZ)
                assert read_answer(client).startswith(b"HTTP/1.1 200"), "not admitted"
            for _ in range(rounds):
                # Requests on the admitted connections while refused ones open around them.
                for client in admitted:
                    client.sendall(HEALTHZ)
                refused += [
                    socket.create_connection(("127.0.0.1", api.port), timeout=10)
                    for _ in range(beyond)
                ]
                statuses = [read_answer(client)[:12] for client in admitted]
                assert statuses == [b"HTTP/1.1 200"] * cap, statuses
            for client in refused:
                assert client.recv(4096).startswith(b"HTTP/1.1 503")
        finally:
            for client in admitted + refused:
                client.close()
        # Every refusal is counted: none was uvicorn's own, uncounted 503.
        assert wait_for(
            lambda: refused_connections(api, "connections") == rounds * beyond, timeout=10
        )


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def read_answer(client: socket.socket) -> bytes:
    """One answer with a Content-Length, read whole from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    assert match is not None, head
    while len(body) < int(match.group(1)):
        chunk = client.recv(4096)
        assert chunk, f"closed after {data!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def open_stream(port: int) -> tuple[socket.socket, bytes]:
    """A push stream on a raw connection: the socket and what came until its first frame."""
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    path = STREAM_PATH.format(vdn_id=1)
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = client.recv(4096)
        assert chunk, received
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    return client, received


def test_part_of_a_pipelined_request_never_cuts_a_running_stream(api: ApiProcess) -> None:
    stream, _ = open_stream(api.port)
    with stream:
        stream.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: abc")
        # Past the moment its head's clock would have run out, heartbeats still arrive, and
        # nothing of ours came in between.
        after = time.monotonic() + HEADER_TIMEOUT + MARGIN
        received = b""
        while time.monotonic() < after or not received.endswith(b": heartbeat\n\n\r\n"):
            chunk = stream.recv(4096)
            assert chunk, f"the stream was closed after {received[-200:]!r}"
            received += chunk
            assert b"HTTP/1.1 4" not in received, received[-200:]
    assert refused_connections(api, "header-timeout") == 0


def test_a_large_pipelined_head_closes_a_running_stream_without_a_word(api: ApiProcess) -> None:
    stream, _ = open_stream(api.port)
    with stream:
        head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (64 * 1024)
        stream.sendall(head)
        received = b""
        for _ in range(10_000):  # until the API closes it (the socket's timeout bounds each read)
            try:
                chunk = stream.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        else:
            pytest.fail("the stream was never closed")
        assert b"HTTP/1.1 4" not in received, received[-200:]
    assert wait_for(lambda: refused_connections(api, "header-too-large") == 1, timeout=5)


@pytest.fixture
def signed_api(test_settings: Settings, tmp_path: Path) -> Iterator[ApiProcess]:
    """The API with authentication on: a statistics request's body is read whole first."""
    settings = test_settings.model_copy(
        update={
            "api_body_idle_timeout_seconds": BODY_IDLE_TIMEOUT,
            "auth_enabled": True,
            "auth_keys": SecretStr(TEST_KEYS),
        }
    )
    with ApiProcess(settings, log_dir=tmp_path) as process:
        yield process


def request_with_body(port: int, length: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    path = STATISTICS_PATH.format(vdn_id=1) + "?campaignId=1001"
    client.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n\r\n".encode()
    )
    return client


def test_a_body_that_stops_arriving_is_closed_and_one_that_trickles_is_read(
    signed_api: ApiProcess,
) -> None:
    stalled = request_with_body(signed_api.port, 10_000)
    stalled.sendall(b"x")
    opened = {stalled: ("a body stopped after one byte", time.monotonic(), BODY_IDLE_TIMEOUT)}
    closed_after = wait_closed(opened, within=BODY_IDLE_TIMEOUT + MARGIN)
    assert stalled in closed_after, "a stalled body holds its connection"
    assert BODY_IDLE_TIMEOUT - 0.1 <= closed_after[stalled] <= BODY_IDLE_TIMEOUT + MARGIN
    assert refused_connections(signed_api, "body-timeout") == 1

    with request_with_body(signed_api.port, 5) as trickling:
        for sent in range(1, 6):  # one byte a second: 4 s in all, twice the idle timeout
            trickling.sendall(b"x")
            if sent < 5:
                time.sleep(BODY_IDLE_TIMEOUT / 2)  # the client's pace, not a wait for the API
        answer = trickling.recv(4096)
    # Read whole, then answered: the signature is missing (401), which needs the body first.
    assert answer.startswith(b"HTTP/1.1 401"), answer[:80]
    assert refused_connections(signed_api, "body-timeout") == 1
    assert "Traceback" not in signed_api.log(), signed_api.log()[-2000:]
