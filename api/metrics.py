"""Prometheus metrics of the API: requests, latency, flow-control refusals, failed signatures,
push subscribers, exports."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "isales_api_requests_total",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "isales_api_request_seconds",
    "Time from receiving a request to the end of its answer, by route template",
    ["route"],
    # The targets are 3 ms (one campaign) and 20 ms (a whole VDN): buckets around both.
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 2.5),
)
RATE_LIMITED = Counter(
    "isales_api_rate_limited_total", "Statistics requests refused by flow control (HTTP 429)"
)
CALLBACKS_RATE_LIMITED = Counter(
    "isales_api_callbacks_rate_limited_total",
    "Result callbacks refused by their token's or key's budget (HTTP 429)",
)
CALLBACKS_UNCHECKED = Counter(
    "isales_api_callbacks_admission_unchecked_total",
    "Result callbacks published without their replay and budget check: Redis did not answer",
)
AUTH_FAILURES = Counter(
    "isales_api_auth_failures_total",
    "Statistics requests refused by authentication (HTTP 401), by reason",
    ["reason"],
)
BODIES_TOO_LARGE = Counter(
    "isales_api_bodies_too_large_total",
    "Requests refused with 413 before their body was read past the limit, by route kind",
    ["route"],
)
CONNECTIONS_REFUSED = Counter(
    "isales_api_connections_refused_total",
    "Connections the HTTP server closed before a request reached the app or while its body "
    "was awaited, by port (public, operations) and reason (header-too-large: 431, "
    "header-timeout: 408 or closed, body-timeout: closed, connections: 503; "
    "api/http_limits.py)",
    ["port", "reason"],
)
OUT_OF_SCOPE = Counter(
    "isales_api_out_of_scope_total",
    "Requests signed by a valid key for a VDN outside its scope (HTTP 401, as a bad signature)",
)
PUSH_SUBSCRIBERS = Gauge(
    "isales_api_push_subscribers", "Push subscribers this process serves now (api/push/)"
)
PUSH_EVENTS = Counter(
    "isales_api_push_events_total",
    "Server-Sent Events sent to push subscribers, by kind (change, snapshot)",
    ["kind"],
)
PUSH_DROPPED = Counter(
    "isales_api_push_dropped_total",
    "Push subscribers dropped by the API, by reason (slow: its queue filled)",
    ["reason"],
)
PUSH_REFUSED = Counter(
    "isales_api_push_refused_total",
    "Push subscriptions refused over a cap, by cap (process: 503, key: 429)",
    ["cap"],
)
PUSH_RECONNECTS = Counter(
    "isales_api_push_reconnects_total",
    "Times the push hub's Redis Pub/Sub connection failed and was opened again",
)
PUSH_READ_ERRORS = Counter(
    "isales_api_push_read_errors_total", "Reads of changes by the push hub that Redis failed"
)
EXPORT_ROWS = Counter(
    "isales_api_export_rows_total",
    "Rows sent by the exports (CSV or NDJSON), by interface (statistics-export, history-export)",
    ["interface"],
)
EXPORTS_BROKEN_OFF = Counter(
    "isales_api_exports_broken_off_total",
    "Exports that failed after their first rows were sent, ended by closing the connection "
    "without the end of the body (api/exports.py), by interface",
    ["interface"],
)
