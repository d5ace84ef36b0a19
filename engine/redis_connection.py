"""One way to reach Redis, standalone or Cluster, and to run Lua scripts in pipelines of both.

``redis://host:6379/0`` is one Redis; ``redis+cluster://host:7000`` (any node) is a Redis
Cluster. The engine and the API hold whichever client the URL calls for and use only commands
that both understand; every key one script touches shares a hash tag (engine/keys.py).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

AnyRedis = Redis | RedisCluster
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
T = TypeVar("T")


# Connections one process opens to one Redis node at most. A burst of requests beyond this
# waits for a free connection (up to POOL_WAIT_SECONDS) instead of failing: redis-py's default
# pool raises "Too many connections" at 100, which 500 concurrent API requests reached.
POOL_SIZE = 64
POOL_WAIT_SECONDS = 10.0


def connect(url: str) -> AnyRedis:
    """A client for ``url``: a Redis Cluster client when the scheme says ``+cluster``."""
    scheme, _, rest = url.partition("://")
    if scheme in CLUSTER_SCHEMES:
        return RedisCluster.from_url(
            f"{CLUSTER_SCHEMES[scheme]}://{rest}", max_connections=POOL_SIZE
        )
    pool = BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=POOL_WAIT_SECONDS
    )
    return Redis.from_pool(pool)  # owns the pool: closing the client closes its connections


class LuaScript:
    """A Lua script queued by SHA in pipelines of either client.

    redis-py's ``register_script`` reloads a forgotten script only in standalone pipelines;
    ``run_pipeline`` below does it for both: on NOSCRIPT (a restarted or new node) it loads the
    scripts on every primary and runs the whole pipeline again. Only idempotent pipelines may
    be run this way, and ours are (counting is idempotent, reading trivially so).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        # EVALSHA names a script by its SHA-1: an identifier, not a security measure.
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def queue(self, pipe: Any, keys: Sequence[str], args: Sequence[Any]) -> None:
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    async def load(self, redis: AnyRedis) -> None:
        await redis.script_load(self.source)  # on a cluster: every primary


async def run_pipeline(
    redis: AnyRedis,
    scripts: Sequence[LuaScript],
    queue_commands: Callable[[Any], object],
) -> list[Any]:
    """Queue commands with ``queue_commands(pipe)``, send them in one round trip, reply list.

    On a cluster, redis-py refuses scripts in pipelines; a ``ClusterBatch`` stands in for the
    pipeline and sends each run of same-named commands concurrently, runs one after the other.
    """
    for attempt in range(2):
        pipe = (
            ClusterBatch(redis)
            if isinstance(redis, RedisCluster)
            else redis.pipeline(transaction=False)
        )
        queue_commands(pipe)
        try:
            replies: list[Any] = await pipe.execute()
            return replies
        except NoScriptError:
            if attempt:
                raise
            for script in scripts:
                await script.load(redis)
        finally:
            await _reset(pipe)
    raise AssertionError("unreachable")


class ClusterBatch:
    """Records commands like a pipeline; ``execute`` sends runs of the same command at once.

    (The same command: the same name and, for scripts, the same script.)

    Order between runs is kept (the counting queues reads, then index writes, then scripts,
    then the stored offsets), which is the order that matters; within a run, the commands touch
    different campaigns and may go to different nodes concurrently.
    """

    def __init__(self, redis: RedisCluster) -> None:
        self.redis = redis
        self.commands: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.commands.append((name, args))

        return record

    async def execute(self) -> list[Any]:
        replies: list[Any] = []
        start = 0
        while start < len(self.commands):
            end = start
            while end < len(self.commands) and _run_key(self.commands[end]) == _run_key(
                self.commands[start]
            ):
                end += 1
            method = getattr(self.redis, self.commands[start][0])
            replies += await asyncio.gather(
                *(method(*args) for _, args in self.commands[start:end])
            )
            start = end
        return replies

    def reset(self) -> None:
        self.commands.clear()


def _run_key(command: tuple[str, tuple[Any, ...]]) -> tuple[str, Any]:
    """Commands of one run: the same name, and for scripts the same script (by SHA)."""
    name, args = command
    return (name, args[0] if name == "evalsha" else None)


async def _reset(pipe: Any) -> None:
    reset: Callable[[], Awaitable[None] | None] | None = getattr(pipe, "reset", None)
    if reset is not None:
        result = reset()
        if result is not None:
            await result
