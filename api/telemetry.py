"""Per-request telemetry: Prometheus counts and latency, and one JSON access-log line.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware: it adds no task or stream
per request, which matters on the one-campaign path whose whole budget is a few milliseconds.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from isales_stats.api.metrics import REQUEST_SECONDS, REQUESTS

ACCESS_LOGGER = "isales_stats.api.access"
UNMATCHED_ROUTE = "unmatched"  # one label for every unknown path: no label per scanner probe

access_log = logging.getLogger(ACCESS_LOGGER)


def configure_access_log() -> None:
    """JSON lines on stderr, one per request; idempotent (tests build many apps)."""
    if access_log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


class RequestTelemetry:
    """Counts, times and (optionally) logs every HTTP request of the wrapped app."""

    def __init__(self, app: ASGIApp, *, log_requests: bool) -> None:
        self.app = app
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the caller gets if the app fails before it answers

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            elapsed = time.perf_counter() - began
            # The router writes the matched route into the scope; its template (without
            # converters such as ":path") is the label.
            route = getattr(scope.get("route"), "path_format", UNMATCHED_ROUTE)
            REQUESTS.labels(route, scope["method"], str(status)).inc()
            REQUEST_SECONDS.labels(route).observe(elapsed)
            if self.log_requests:
                access_log.info(_access_line(scope, route, status, elapsed))


def _access_line(scope: Scope, route: str, status: int, elapsed: float) -> str:
    state: dict[str, Any] = scope.get("state") or {}
    client = scope.get("client")
    line = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "method": scope["method"],
        # As received (still percent-encoded): exact, and always valid JSON text.
        "path": (scope.get("raw_path") or b"").decode("latin-1") or scope["path"],
        "query": _redacted(scope.get("query_string", b"").decode("latin-1")),
        "route": route,
        "status": status,
        "durationMs": round(elapsed * 1000, 3),
        # Behind ISALES_TRUSTED_PROXIES the caller's address, found by api/auth.py; "peer" is
        # whoever connected.
        "client": state.get("client_address") or (client[0] if client else None),
        "peer": client[0] if client else None,
        "accessKey": state.get("access_key"),
        "authFailure": state.get("auth_failure"),
    }
    return orjson.dumps(line).decode()


# A callback token travels in the query (?token=...: iSales can only be given a URL); it is a
# secret, so its value never reaches the log. Names are compared decoded, as the route reads
# them: ?%74oken=... and ?tok%65n=... are the token too.
_SECRET_QUERY_NAMES = frozenset({"token"})


def _redacted(query: str) -> str:
    """The query as received, but the value of every secret parameter: ``token=[redacted]``
    (its name as received: the line still shows what was sent)."""
    return "&".join(_redacted_pair(pair) for pair in query.split("&"))


def _redacted_pair(pair: str) -> str:
    name, equals, _ = pair.partition("=")
    if equals and unquote_plus(name).casefold() in _SECRET_QUERY_NAMES:
        return f"{name}=[redacted]"
    return pair
