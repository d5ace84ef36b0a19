"""Prometheus metrics of a notifier (notifier.py beside this module), served on its metrics port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERY_LAG = Histogram(
    "isales_webhook_delivery_lag_seconds",
    "From a notification's decision (its timestamp) to its 2xx from the receiver",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400),
)
ATTEMPTS = Counter("isales_webhook_attempts_total", "Delivery attempts, by outcome", ["outcome"])
FAILURES = Counter(
    "isales_webhook_failures_total",
    "Failed delivery attempts, by reason (timeout, connection, address, http_4xx, http_5xx, "
    "http_3xx, gone)",
    ["reason"],
)
DEAD_LETTERS = Counter(
    "isales_webhook_dead_letters_total",
    "Deliveries given up (retry period over, or a malformed outbox entry), by reason",
    ["reason"],
)
SUBSCRIPTIONS_DISABLED = Counter(
    "isales_webhook_subscriptions_disabled_total", "Subscriptions disabled by a 410 Gone"
)
DUE_CAMPAIGNS = Gauge(
    "isales_notifier_due_campaigns", "Campaigns with notifications not delivered everywhere"
)
SHARDS_HELD = Gauge("isales_notifier_shards_held", "Shards of the due set this notifier holds")
IN_FLIGHT = Gauge("isales_notifier_requests_in_flight", "Delivery requests waiting for answers")
REDIS_ERRORS = Counter(
    "isales_notifier_redis_errors_total", "Notifier steps that failed on Redis (retried)"
)
LEASES_LOST = Counter(
    "isales_notifier_leases_lost_total",
    "Shard leases found taken by another notifier at renewal (its deliveries had stopped)",
)
