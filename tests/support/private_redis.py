"""A Redis of one test's own, on a free port under its temporary directory.

For tests that kill, fill, flush or measure Redis: the shared stack's Redis holds the other
tests' keys and must outlive them. The same server and settings as the local stack's
(isales_stats/commands/stack/redis.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from isales_stats.commands.stack.redis import RedisServer
from isales_stats.core.settings import Settings
from tests.support.ports import free_port


@contextmanager
def private_redis(settings: Settings, directory: Path) -> Iterator[tuple[Settings, RedisServer]]:
    """``settings`` pointed at a new Redis, running until the block ends, and its server."""
    own = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}/0", "stack_dir": directory}
    )
    server = RedisServer(own)
    server.ensure_running()
    try:
        yield own, server
    finally:
        server.process.stop()
