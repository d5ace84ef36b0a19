"""One way to reach Redis, standalone or Cluster, and to run Lua scripts in pipelines of both.

``redis://host:6379/0`` is one Redis; ``redis+cluster://host:7000`` (any node) is a Redis
Cluster. The engine and the API hold whichever client the URL calls for and use only commands
that both understand; every key one script touches shares a hash tag (engine/keys.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

AnyRedis = Redis | RedisCluster
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
T = TypeVar("T")


def connect(url: str) -> AnyRedis:
    """A client for ``url``: a Redis Cluster client when the scheme says ``+cluster``."""
    scheme, _, rest = url.partition("://")
    if scheme in CLUSTER_SCHEMES:
        return RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}://{rest}")
    return Redis.from_url(url)


class LuaScript:
    """A Lua script queued by SHA in pipelines of either client.

    redis-py's ``register_script`` reloads a forgotten script only in standalone pipelines;
    ``run_pipeline`` below does it for both: on NOSCRIPT (a restarted or new node) it loads the
    scripts on every primary and runs the whole pipeline again. Only idempotent pipelines may
    be run this way, and ours are (counting is idempotent, reading trivially so).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def queue(self, pipe: Any, keys: Sequence[str], args: Sequence[Any]) -> None:
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    async def load(self, redis: AnyRedis) -> None:
        await redis.script_load(self.source)  # on a cluster: every primary


async def run_pipeline(
    redis: AnyRedis,
    scripts: Sequence[LuaScript],
    queue_commands: Callable[[Any], object],
) -> list[Any]:
    """Queue commands with ``queue_commands(pipe)``, send them in one round trip, reply list."""
    for attempt in range(2):
        pipe = redis.pipeline(transaction=False)
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


async def _reset(pipe: Any) -> None:
    reset: Callable[[], Awaitable[None] | None] | None = getattr(pipe, "reset", None)
    if reset is not None:
        result = reset()
        if result is not None:
            await result
