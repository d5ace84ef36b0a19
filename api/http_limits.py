"""What one connection may cost the API before a request reaches the app: the HTTP protocol
uvicorn runs, with three bounds it lacks.

uvicorn's httptools protocol buffers a request's head for as long and as large as a client
sends it (one 256 MiB header raised the process' memory by 360 MiB, and parsing it took
seconds of CPU from every other request), keeps a connection that never finishes its head
forever (``timeout_keep_alive`` only covers the quiet between two requests, and any byte
received cancels it), and accepts every connection offered. So, per connection:

- **head size**: a request line and headers past ``ISALES_API_MAX_HEADER_BYTES`` get 431 and
  the connection is closed, before the rest is read. The bytes are counted as they arrive, one
  read (at most 256 KiB) at a time, so the bound holds to within one read;
- **head time**: a connection whose request head is not complete within
  ``ISALES_API_HEADER_TIMEOUT_SECONDS`` of its opening (or of the first byte of its next
  request) is closed, with 408 when it had sent part of one (a slowloris);
- **connections**: past ``ISALES_API_MAX_CONNECTIONS`` open at once, a new connection gets 503
  and is closed at once, and uvicorn's own ``limit_concurrency`` answers 503 to a request
  beyond as many running tasks.

The protocol is pinned to httptools (``uvicorn[standard]`` installs it): "auto" would choose
h11 where httptools is missing, and the guard is written against httptools' callbacks. Each
refusal is counted in ``isales_api_connections_refused_total{reason}``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from isales_stats.api import metrics
from isales_stats.core.settings import Settings


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int
    header_timeout_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_header_bytes=settings.api_max_header_bytes,
            header_timeout_seconds=settings.api_header_timeout_seconds,
            max_connections=settings.api_max_connections,
        )


def _refusal(status: int, message: str) -> bytes:
    body = message.encode("ascii")
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


HEADER_TOO_LARGE = _refusal(431, "Request line and headers too large.\n")
HEADER_TIMEOUT = _refusal(408, "Request headers not received in time.\n")
TOO_MANY_CONNECTIONS = _refusal(503, "Too many connections.\n")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of ``limits`` (see the module)."""

    limits: ConnectionLimits  # set by ``guarded_protocol``

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_head = True  # until the current request's headers are complete
        self._head_bytes = 0
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse("connections", TOO_MANY_CONNECTIONS)
            return
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            self._head_bytes += len(data)
            self._arm_head_deadline()
        super().data_received(data)
        if (
            self._awaiting_head
            and self._head_bytes > self.limits.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._refuse("header-too-large", HEADER_TOO_LARGE)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next request's head starts here; its clock starts with its first byte (until
        # then the connection is idle, which uvicorn's keep-alive timeout covers).
        self._awaiting_head = True
        self._head_bytes = 0

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(
                self.limits.header_timeout_seconds, self._head_too_slow
            )

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._awaiting_head and not self.transport.is_closing():
            # Nothing sent at all: an idle connection, closed without a word (as a browser's
            # pre-connection expects); part of a head: say why.
            self._refuse("header-timeout", HEADER_TIMEOUT if self._head_bytes else b"")

    def _refuse(self, reason: str, response: bytes) -> None:
        metrics.CONNECTIONS_REFUSED.labels(reason).inc()
        self._disarm_head_deadline()
        if response:
            self.transport.write(response)
        self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to give ``uvicorn.Config(http=...)``: one per server, its limits
    bound to it (uvicorn builds protocols from the class alone)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
