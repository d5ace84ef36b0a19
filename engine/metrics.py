"""Prometheus metrics of a worker: what was counted, what was turned away, and why."""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from isales_stats.engine.lag import PartitionLag

EVENTS_COUNTED = Counter("isales_events_counted_total", "Events applied to the counters")
EVENTS_DUPLICATE = Counter(
    "isales_events_duplicate_total", "Events already counted (redeliveries, upstream retries)"
)
EVENTS_DEAD_LETTERED = Counter(
    "isales_events_dead_lettered_total", "Events sent to the dead-letter topic", ["reason"]
)
EVENTS_TOO_OLD_FOR_DAILY = Counter(
    "isales_events_too_old_for_daily_total",
    "Events counted in the totals but older than the daily retention",
)
REDIS_RETRIES = Counter(
    "isales_counting_retries_total", "Counting batches retried after a Redis error"
)
BATCH_SECONDS = Histogram(
    "isales_counting_batch_seconds",
    "Time to count one batch in Redis",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
REDIS_LOSSES = Counter(
    "isales_redis_lost_writes_total",
    "Partitions read again because Redis had lost counts (restart within its fsync second)",
)
CAMPAIGNS_ENDED = Counter(
    "isales_campaigns_ended_total",
    "Campaigns whose idempotence state was released, or whose counters were deleted",
    ["state"],  # released | deleted
)
LIFECYCLE_SWEEP_ERRORS = Counter(
    "isales_lifecycle_sweep_errors_total", "Lifecycle sweeps that failed (retried next time)"
)
NOTIFICATION_SWEEP_ERRORS = Counter(
    "isales_notification_sweep_errors_total",
    "Notification sweeps that failed (retried at the next tick)",
)

# How full Redis is (engine/redis_memory.py): with noeviction, a full Redis refuses the counts
# and counting stops until memory is freed or added; the alert comes before that.
REDIS_USED_MEMORY = Gauge(
    "isales_redis_used_memory_bytes", "Redis' used_memory (INFO memory), per node", ["node"]
)
REDIS_MAXMEMORY = Gauge(
    "isales_redis_maxmemory_bytes", "Redis' maxmemory, per node (0: no limit)", ["node"]
)

EVENTS_LOST_TO_RETENTION = Counter(
    "isales_events_lost_to_retention_total",
    "Events Kafka deleted (retention) before they were counted: missing from the statistics",
    ["topic", "partition"],
)

# A worker started before Kafka waits for it (engine/kafka_wait.py): one per attempt that
# found it not there, so a worker stuck at start-up shows on a dashboard, not only in its log.
KAFKA_WAITS = Counter(
    "isales_worker_kafka_unreachable_total",
    "Start-up attempts that found Kafka not answering (the worker waits and tries again)",
)

# The metrics port's own refusals (engine/health.py): a scrape missing shows why here.
METRICS_CONNECTIONS_REFUSED = Counter(
    "isales_worker_metrics_connections_refused_total",
    "Connections to the worker's metrics port closed without an answer, by reason "
    "(connections: over the cap, timeout: too slow, bad-request: not a request it reads)",
    ["reason"],
)

# Per partition, worked out at each scrape (engine/lag.py).
PARTITION_LAG = PartitionLag()
REGISTRY.register(PARTITION_LAG)
