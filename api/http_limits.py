"""What one connection may cost the API before a request reaches the app: the HTTP protocol
uvicorn runs, with the bounds it lacks.

uvicorn's httptools protocol buffers a request's head for as long and as large as a client
sends it (one 256 MiB header raised the process' memory by 360 MiB, and parsing it took
seconds of CPU from every other request), keeps a connection that never finishes its head or
its body forever (``timeout_keep_alive`` only covers the quiet between two requests, and any
byte received cancels it), and accepts every connection offered. So, per connection:

- **head size**: a request line and headers past ``ISALES_API_MAX_HEADER_BYTES`` get 431 and
  the connection is closed, before the rest is read. The bytes are counted as they arrive, one
  read (at most 256 KiB) at a time, so the bound holds to within one read;
- **head time**: a connection whose request head is not complete within
  ``ISALES_API_HEADER_TIMEOUT_SECONDS`` of its opening (or of the first byte of its next
  request) is closed, with 408 when it had sent part of one (a slowloris);
- **body time**: a request whose body stops arriving for ``ISALES_API_BODY_IDLE_TIMEOUT_SECONDS``
  is closed (a slow body: the app waits for the whole body before it answers). The clock
  restarts with each piece, so a slow body that keeps moving is read;
- **connections**: past ``ISALES_API_MAX_CONNECTIONS`` open at once, a new connection gets 503
  and is closed at once, and uvicorn's own ``limit_concurrency`` answers 503 to a request
  beyond as many running tasks.

A refusal is written only when nothing else is on the wire: while a response is being sent
(a push stream, or any answer still going out when the client pipelines its next request),
bytes of ours would land inside it. The next request's head clock therefore starts only once
the running response is complete, and a refusal due while one runs closes without a word.

The protocol is pinned to httptools (``uvicorn[standard]`` installs it): "auto" would choose
h11 where httptools is missing, and the guard is written against httptools' callbacks. Each
refusal is counted in ``isales_api_connections_refused_total{port,reason}``.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from isales_stats.api import metrics
from isales_stats.core.settings import Settings


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int
    header_timeout_seconds: float
    body_idle_timeout_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_header_bytes=settings.api_max_header_bytes,
            header_timeout_seconds=settings.api_header_timeout_seconds,
            body_idle_timeout_seconds=settings.api_body_idle_timeout_seconds,
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


class _Reading(enum.Enum):
    """What the connection reads now, which decides the clock that bounds it."""

    # Nothing of a next request yet: the quiet between two requests, which uvicorn's
    # keep-alive timeout covers once no response is running. No clock of ours.
    NOTHING = enum.auto()
    # A request line and headers: the head clock (from the connection's opening, or from the
    # head's first byte) and the size cap.
    HEAD = enum.auto()
    # A body, its head complete: the idle clock, restarted by each piece of it.
    BODY = enum.auto()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of ``limits`` (see the module)."""

    limits: ConnectionLimits  # set by ``guarded_protocol``
    port_name: str  # the metric's ``port`` label, set by ``guarded_protocol``

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading = _Reading.HEAD  # a new connection owes its first request's head
        self._head_bytes = 0
        self._clock: asyncio.TimerHandle | None = None

    # The transitions, as the parser and the transport report them.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse("connections", TOO_MANY_CONNECTIONS)
            return
        self._start_head_clock()  # from the opening: a connection that sends nothing goes too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading is not _Reading.BODY:
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            self._reading is _Reading.HEAD
            and self._head_bytes > self.limits.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._refuse("header-too-large", HEADER_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._reading is _Reading.NOTHING:  # the first byte of a next request's head
            self._reading = _Reading.HEAD
            if not self._response_running():
                self._start_head_clock()
            # else on_response_complete starts it: until then the client waits for us.

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._reading = _Reading.BODY
        self._stop_clock()
        self._restart_body_clock()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._restart_body_clock()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading = _Reading.NOTHING
        self._head_bytes = 0
        self._stop_clock()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts a pipelined request, if one was queued
        if self._clock is not None or self.transport.is_closing():
            return
        if self._reading is _Reading.HEAD and not self._response_running():
            # Part of a pipelined head came while the response went out: its clock starts
            # now, and it rules instead of the keep-alive timeout uvicorn has just started.
            self._unset_keepalive_if_required()
            self._start_head_clock()
        elif self._reading is _Reading.BODY:
            self._restart_body_clock()  # the pipelined request just started: its body is read

    def handle_websocket_upgrade(self) -> None:
        self._stop_clock()  # the connection is the WebSocket protocol's from here
        super().handle_websocket_upgrade()

    # The clocks: one at a time, the head's or the body's.

    def _start_head_clock(self) -> None:
        self._start_clock(self.limits.header_timeout_seconds, self._head_too_slow)

    def _restart_body_clock(self) -> None:
        # Not for a pipelined request queued behind a running one: uvicorn stops reading until
        # its turn comes (on_response_complete), so its body cannot arrive.
        if not self.pipeline:
            self._start_clock(self.limits.body_idle_timeout_seconds, self._body_too_slow)

    def _start_clock(self, seconds: float, expired: Callable[[], None]) -> None:
        self._stop_clock()
        self._clock = self.loop.call_later(seconds, expired)

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    def _head_too_slow(self) -> None:
        self._clock = None
        if self.transport.is_closing():
            return
        if self._head_bytes:
            self._refuse("header-timeout", HEADER_TIMEOUT)  # a slowloris: say why
        else:
            # Nothing sent at all: an idle connection, closed without a word (as a browser's
            # pre-connection expects).
            self._close_silently("header-timeout")

    def _body_too_slow(self) -> None:
        self._clock = None
        if not self.transport.is_closing():
            # The request's cycle is running (the app waits for the body, or has answered
            # already): nothing can be written that the client would not read as part of it.
            self._close_silently("body-timeout")

    # The refusals.

    def _response_running(self) -> bool:
        """Whether a request's cycle is under way: bytes written now would land inside its
        response (or, before its response starts, be taken for it)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _refuse(self, reason: str, response: bytes) -> None:
        """Answer ``response`` and close; only closes while a response is running."""
        if self._response_running():
            self._close_silently(reason)
            return
        self.transport.write(response)
        self._close_silently(reason)

    def _close_silently(self, reason: str) -> None:
        metrics.CONNECTIONS_REFUSED.labels(self.port_name, reason).inc()
        self._stop_clock()
        # Out of uvicorn's count of open connections at once, not when the transport reports
        # the close a loop turn later: during a burst at the cap, refused connections still
        # counted would trip ``limit_concurrency`` for the requests of connections admitted.
        self.connections.discard(self)
        self.transport.close()


def guarded_protocol(limits: ConnectionLimits, port_name: str) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to give ``uvicorn.Config(http=...)``: one per server, its limits and
    its port's name (``public``, ``operations``) bound to it (uvicorn builds protocols from the
    class alone)."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"limits": limits, "port_name": port_name},
    )
