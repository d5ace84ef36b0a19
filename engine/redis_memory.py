"""How full Redis is, exported by each worker: the figure to alert on before Redis refuses.

Redis runs with ``maxmemory-policy noeviction`` (isales_stats/commands/stack/redis.py): no
counter is ever evicted, and a full Redis refuses the counting scripts instead, so counting
waits, retried, until memory is freed or added. ``isales_redis_used_memory_bytes`` over
``isales_redis_maxmemory_bytes`` is what the alert watches (deploy/prometheus/alerts.yml).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from isales_stats.engine import metrics
from isales_stats.engine.redis_connection import AnyRedis

# How often a worker reads INFO memory (one small command).
REDIS_MEMORY_SECONDS = 5.0


async def record_redis_memory(redis: AnyRedis) -> None:
    """Read INFO memory of every primary (the one of a single Redis) into the gauges."""
    if isinstance(redis, RedisCluster):
        # One reply per node, keyed by its address: a shard that fills alone must show.
        nodes: dict[str, Any] = await redis.info("memory", target_nodes=RedisCluster.PRIMARIES)
    else:
        nodes = {"": await redis.info("memory")}
    for node, fields in nodes.items():
        metrics.REDIS_USED_MEMORY.labels(node).set(int(fields["used_memory"]))
        metrics.REDIS_MAXMEMORY.labels(node).set(int(fields["maxmemory"]))
