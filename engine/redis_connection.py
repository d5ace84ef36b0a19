"""One way to reach Redis, standalone or Cluster, and to run Lua scripts in pipelines of both.

``redis://host:6379/0`` is one Redis; ``redis+cluster://host:7000`` (any node) is a Redis
Cluster; ``rediss://`` either of them over TLS. The engine and the API hold whichever client
the URL calls for and use only commands that both understand; every key one script touches
shares a hash tag (engine/keys.py). ``verify_access`` runs once at start-up, so that a wrong
password or certificate stops a process at once, naming the setting.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AuthenticationError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from isales_stats.core.settings import Settings

AnyRedis = Redis | RedisCluster
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
T = TypeVar("T")


# Connections one process opens to one Redis node at most. A burst of requests beyond this
# waits for a free connection (up to POOL_WAIT_SECONDS) instead of failing: redis-py's default
# pool raises "Too many connections" at 100, which 500 concurrent API requests reached.
POOL_SIZE = 64
POOL_WAIT_SECONDS = 10.0


def connect(settings: Settings) -> AnyRedis:
    """A client for ``settings.redis_url``: a Redis Cluster client when the scheme says
    ``+cluster``; TLS, the ACL user and the timeouts from ``connection_options``."""
    scheme, _, rest = settings.redis_url.partition("://")
    options = connection_options(settings)
    if scheme in CLUSTER_SCHEMES:
        return RedisCluster.from_url(
            f"{CLUSTER_SCHEMES[scheme]}://{rest}", max_connections=POOL_SIZE, **options
        )
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=POOL_SIZE, timeout=POOL_WAIT_SECONDS, **options
    )
    return Redis.from_pool(pool)  # owns the pool: closing the client closes its connections


def connect_pubsub(settings: Settings) -> Redis:
    """A plain client for Pub/Sub: on a Redis Cluster, to the first node of the URL (a
    PUBLISH reaches every node's subscribers; redis-py's asyncio cluster client has no Pub/Sub)."""
    scheme, _, rest = settings.redis_url.partition("://")
    url = (
        f"{CLUSTER_SCHEMES[scheme]}://{rest.split(',')[0]}"
        if scheme in CLUSTER_SCHEMES
        else (settings.redis_url)
    )
    return Redis.from_url(url, **connection_options(settings))


def text_of(reply: bytes | str) -> str:
    """A Redis reply as text: clients made without ``decode_responses`` answer bytes."""
    return reply.decode() if isinstance(reply, bytes) else reply


def connection_options(settings: Settings) -> dict[str, Any]:
    """redis-py's keyword arguments for the settings beyond the URL.

    Timeouts always: a Redis that accepts connections but never answers (a stopped process, a
    black-holed network) must raise, so that the API answers 503 and the worker retries. The
    user and password only when set, so that a URL's own ``user:password@`` still works.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_connect_timeout_seconds,
        "socket_timeout": settings.redis_timeout_seconds,
    }
    if settings.redis_username:
        options["username"] = settings.redis_username
    password = settings.redis_password_value()
    if password:
        options["password"] = password
    if settings.redis_url.startswith("rediss"):
        # The server's certificate must chain to the CA and name the host: redis-py's
        # defaults (ssl_cert_reqs "required", ssl_check_hostname True) are kept.
        if settings.redis_ca_file is not None:
            options["ssl_ca_certs"] = str(settings.redis_ca_file)
        if settings.redis_cert_file is not None and settings.redis_key_file is not None:
            options["ssl_certfile"] = str(settings.redis_cert_file)
            options["ssl_keyfile"] = str(settings.redis_key_file)
    return options


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


class ReplyGroups:
    """A pipeline's replies found by what they answer, not by offset.

    Commands are queued in named groups (``with groups.group("verdicts") as pipe: ...``); after
    the round trip, ``split`` hands each group its own replies. Pass ``groups.on(pipe)`` where
    the pipeline would go: ``run_pipeline`` may queue twice (a NOSCRIPT retry), and each queueing
    starts the groups afresh.
    """

    def __init__(self) -> None:
        self._pipe: Any = None
        self._spans: dict[str, tuple[int, int]] = {}

    def on(self, pipe: Any) -> ReplyGroups:
        self._pipe = pipe
        self._spans = {}
        return self

    @contextmanager
    def group(self, name: str) -> Iterator[Any]:
        """Queue a group's commands on the pipeline this yields."""
        if name in self._spans:
            raise ValueError(f"a pipeline has one group named {name!r}")
        start = len(self._pipe)
        yield self._pipe
        self._spans[name] = (start, len(self._pipe))

    def split(self, replies: Sequence[Any]) -> dict[str, list[Any]]:
        """Each group's replies, by its name."""
        return {name: list(replies[start:end]) for name, (start, end) in self._spans.items()}


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
        def record(*args: Any, **options: Any) -> None:
            self.commands.append((name, (*args, options)))

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
                *(method(*args[:-1], **args[-1]) for _, args in self.commands[start:end])
            )
            start = end
        return replies

    def __len__(self) -> int:
        return len(self.commands)

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


class RedisAccessRefused(Exception):
    """Redis answered, and refused us: a setting is wrong (the message names it)."""


async def verify_access(settings: Settings) -> None:
    """PING Redis once at start-up, so that a misconfiguration stops the process in seconds.

    A wrong user or password and a TLS failure (an untrusted CA, a certificate the server
    refuses) raise ``RedisAccessRefused`` naming the settings to check. An unreachable Redis
    does not: that is an outage, not a mistake, and the worker retries, the API answers 503.
    The password is never part of the message.
    """
    async with connect(settings) as redis:
        try:
            await redis.ping()
        except AuthenticationError as error:
            raise RedisAccessRefused(
                f"Redis at {_without_credentials(settings.redis_url)} refused the user or the "
                f"password ({error}): check ISALES_REDIS_USERNAME and ISALES_REDIS_PASSWORD "
                "(or ISALES_REDIS_PASSWORD_FILE, or the URL's user:password@)"
            ) from None
        except ResponseError as error:
            if "NOPERM" not in str(error):
                raise
            raise RedisAccessRefused(
                f"Redis user {settings.redis_username or 'default'!r} may not run PING "
                f"({error}): its ACL needs the project's commands (docs/operations.md)"
            ) from None
        except (RedisConnectionError, OSError) as error:
            if not _is_tls_failure(error):
                return  # an outage: the worker retries, the API's /readyz says 503
            raise RedisAccessRefused(
                f"TLS to Redis at {_without_credentials(settings.redis_url)} failed ({error}): "
                "check ISALES_REDIS_CA_FILE (the CA of the server's certificate), and "
                "ISALES_REDIS_CERT_FILE and ISALES_REDIS_KEY_FILE if the server asks for a "
                "client certificate"
            ) from None


def _is_tls_failure(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "SSL" in str(seen) or "certificate" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
