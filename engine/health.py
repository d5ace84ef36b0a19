"""The worker's HTTP port: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for the
orchestrator.

``/readyz`` answers 503 once this process has found events that Kafka deleted (retention)
before they were counted, naming the partitions and how many (engine/batch_delivery.py,
``_check_retention``). The worker goes on counting what is left, since stopping would lose
more; but its counts stay short for those days, and a metric and a log line are easy to miss.
A worker that is not ready shows as 0/1 in ``kubectl get pods`` and holds up a rolling update
until someone looks. A restart clears it (the group then resumes where this process left off,
which the log still holds): restarting is the acknowledgement. ``/healthz`` is liveness: the
process answers. A notifier serves the same port with its own readiness (Redis answers it; it
has no Kafka).

The port is served by one thread running its own small event loop, bounded like the API's
operations port: it listens on ``ISALES_WORKER_METRICS_HOST`` (loopback unless set: the pod's
address in Kubernetes and compose), holds at most ``MAX_CONNECTIONS`` connections (a new one
beyond is closed at once), reads a request head of at most ``MAX_HEAD_BYTES``, and closes a
connection that has not sent its whole head, or not taken its answer, within
``TIMEOUT_SECONDS``. One request per connection: a scrape is one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from isales_stats.engine import metrics

MAX_CONNECTIONS = 16  # Prometheus and two probes need a few; the rest is someone else
MAX_HEAD_BYTES = 16 * 1024
TIMEOUT_SECONDS = 10.0  # above Prometheus' default scrape timeout and the probes' (3 to 5 s)


def events_lost_to_retention() -> dict[str, int]:
    """``topic/partition`` -> events lost, as this process counted them."""
    lost = {}
    for family in metrics.EVENTS_LOST_TO_RETENTION.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value > 0:
                lost[f"{sample.labels['topic']}/{sample.labels['partition']}"] = int(sample.value)
    return lost


# Set by engine/worker.py once Kafka answered and the topics exist: until then the port is
# open (alive) but not ready, while the worker waits for a Kafka that is not there yet.
KAFKA_REACHED = threading.Event()


def readiness() -> tuple[bool, str]:
    if not KAFKA_REACHED.is_set():
        return False, "waiting for Kafka (ISALES_KAFKA_URL): see the worker's log\n"
    lost = events_lost_to_retention()
    if not lost:
        return True, "ready\n"
    partitions = ", ".join(f"{where}: {count}" for where, count in sorted(lost.items()))
    return False, (
        "events were deleted by the topic's retention before they were counted and are "
        f"missing from the statistics ({partitions}); see the worker's log and "
        "docs/operations.md, 'Topics'. A restart clears this.\n"
    )


# Whether the process is ready, and the text saying why (not): the worker's is ``readiness``; a
# notifier, which has no Kafka, passes its own (``NotifierReadiness``,
# engine/notifications/notifier.py).
Readiness = Callable[[], tuple[bool, str]]


def answer(path: str, accept: str, check: Readiness = readiness) -> tuple[str, str, bytes]:
    """The status line's reason, the content type and the body for a GET of ``path``."""
    if path == "/healthz":
        return "200 OK", "text/plain", b"alive\n"
    if path == "/readyz":
        ready, text = check()
        return ("200 OK" if ready else "503 Service Unavailable"), "text/plain", text.encode()
    encoder, content_type = choose_encoder(accept)
    return "200 OK", content_type, encoder(REGISTRY)


@dataclass
class MetricsServer:
    """The worker's HTTP port, served from a daemon thread (see the module)."""

    host: str
    port: int
    timeout_seconds: float = TIMEOUT_SECONDS
    max_connections: int = MAX_CONNECTIONS
    check_readiness: Readiness = readiness
    open_connections: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)  # the open connections

    def start(self) -> MetricsServer:
        """Listen (an OSError, such as a busy port, raises here), then serve from a thread."""
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve_connection, self.host, self.port, limit=MAX_HEAD_BYTES)
        )
        self._thread = threading.Thread(target=self._run, name="worker-http", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._loop.run_forever()
        finally:  # stopped: end what is still open, then the loop
            self._loop.run_until_complete(self._end_connections())
            self._loop.close()

    async def _end_connections(self) -> None:
        """Drop every open connection and wait until each handler has finished.

        Aborted rather than closed: a connection whose client stopped reading holds unsent
        bytes, and a close would wait for them, its handler pending when the loop closes. A
        handler whose connection is gone finishes by itself (its read or its drain fails), so
        none is cancelled.
        """
        for writer in list(self._writers):
            writer.transport.abort()
        handlers = asyncio.all_tasks() - {asyncio.current_task()}
        await asyncio.gather(*handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the metrics server was not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    def stop(self) -> None:
        """Stop serving and wait for the thread (the worker never does: it exits)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return

        def close() -> None:
            server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(close)
        thread.join()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self.open_connections >= self.max_connections:
            metrics.METRICS_CONNECTIONS_REFUSED.labels("connections").inc()
            writer.close()
            return
        self.open_connections += 1
        self._writers.add(writer)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                head = await reader.readuntil(b"\r\n\r\n")
                reason, content_type, body = answer(*_path_and_accept(head), self.check_readiness)
                writer.write(
                    f"HTTP/1.1 {reason}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except TimeoutError:
            metrics.METRICS_CONNECTIONS_REFUSED.labels("timeout").inc()
        except (asyncio.LimitOverrunError, ValueError):  # a head too large; not HTTP
            metrics.METRICS_CONNECTIONS_REFUSED.labels("bad-request").inc()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        finally:
            self.open_connections -= 1
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _path_and_accept(head: bytes) -> tuple[str, str]:
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    _method, target, _version = request_line.split(" ")
    accept = ""
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "accept":
            accept = value.strip()
    return target.split("?", 1)[0], accept


def serve(port: int, host: str, check_readiness: Readiness = readiness) -> MetricsServer:
    """Serve the worker's port (or a notifier's, with its readiness) on ``host:port`` from a
    daemon thread."""
    return MetricsServer(host, port, check_readiness=check_readiness).start()
