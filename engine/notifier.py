"""The notifier: delivers every campaign's outbox to the subscriptions covering it, signed,
in order per campaign and subscription, retried until delivered or given up.

Sharing the work. The due set's members ("vdnId:campaignId") fall in ``notifier_shards``
shards by a stable hash (CRC-32); a notifier delivers the campaigns of the shards whose lease
it holds (``SET NX PX``, renewed by a compare-and-pexpire). Each notifier announces itself
in a members zset and holds about its share (shards / live notifiers); a notifier that dies
stops renewing, and its shards are taken within a lease time.

A lane. One campaign and one subscription: the entries after the subscription's cursor, one
after the other (the next waits for the one before), each tried until a 2xx, with backoff and
full jitter, for ``webhook_retry_period_seconds``; then a dead letter and the cursor moves on.
Lanes run concurrently, with at most ``notifier_max_in_flight`` requests in flight and at most
``notifier_max_in_flight_per_subscription`` for any one subscription, so a slow or dead
receiver holds only its own share and delays no other. A lane's retry state (the entry, its
first attempt, attempts, the next attempt) is in Redis: a notifier killed mid-delivery is
replaced by one that resumes it; the entry is sent again with the same webhook-id.

Settling. When no lane of a campaign runs, and every covering subscription's cursor has
reached the stream's last entry, the campaign leaves the due set (removed, then checked again:
an entry written meanwhile puts it back), and the stream is trimmed to the lowest cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import random
import secrets
import socket
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from redis.exceptions import RedisError
from standardwebhooks.webhooks import Webhook

from isales_stats.core.keys import KeyLayout
from isales_stats.core.notification_kinds import OUTBOX_FIELDS
from isales_stats.core.settings import Settings
from isales_stats.core.webhooks import (
    AddressRefused,
    Subscription,
    check_addresses,
    check_url,
    delivery_body,
    retry_delay,
    stream_id_after,
    stream_id_key,
)
from isales_stats.engine import notifier_metrics as metrics
from isales_stats.engine.outbox import due_member, parse_due_member
from isales_stats.engine.redis_connection import AnyRedis, connect, connect_pubsub
from isales_stats.engine.subscriptions import SubscriptionStore

log = logging.getLogger(__name__)

ENTRIES_PER_READ = 100
USER_AGENT = "isales-stats-notifier"
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# A cursor only moves forward: a notifier that lost its lease and finishes a delivery late
# must not move a cursor the new holder already moved past.
_ADVANCE = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local cm, cs = string.match(current, '^(%d+)-(%d+)$')
  local nm, ns = string.match(ARGV[2], '^(%d+)-(%d+)$')
  cm, cs, nm, ns = tonumber(cm), tonumber(cs), tonumber(nm), tonumber(ns)
  if cm > nm or (cm == nm and cs >= ns) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""


class NotifierReadiness:
    """A notifier's ``/readyz`` (engine/health.py): ready while Redis answers it, that is while a
    step got its answers within a lease time (a notifier has no Kafka; without Redis it holds
    no lease and delivers nothing). Written by the notifier's loop, read by the port's thread."""

    def __init__(self, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds
        self.answered_at: float | None = None  # time.monotonic() of the last answered step

    def redis_answered(self) -> None:
        self.answered_at = time.monotonic()

    def __call__(self) -> tuple[bool, str]:
        if self.answered_at is None:
            return False, "waiting for Redis (ISALES_REDIS_URL): see the notifier's log\n"
        silent = time.monotonic() - self.answered_at
        if silent > self.lease_seconds:
            return False, f"Redis has not answered for {silent:.0f} s: see the notifier's log\n"
        return True, "ready\n"


def shard_of(member: str, shards: int) -> int:
    """The shard of a due-set member: a stable hash, the same in every notifier."""
    return zlib.crc32(member.encode()) % shards


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt's outcome: delivered, or the failure's reason and HTTP status."""

    delivered: bool
    reason: str = ""
    status: int = 0


class Deliverer:
    """Sends one outbox entry to one subscription, signed, to an address checked at each try."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    async def attempt(self, subscription: Subscription, entry: dict[str, str]) -> Attempt:
        try:
            target, headers, extensions = await self._pinned_target(subscription)
        except AddressRefused as refused:
            log.warning("subscription %s: %s", subscription.id, refused)
            return Attempt(False, "address")
        body = delivery_body(entry)
        signer = Webhook(subscription.secret)
        now = datetime.now(UTC)
        headers |= {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": entry[OUTBOX_FIELDS[0]],
            "webhook-timestamp": str(math.floor(now.timestamp())),
            "webhook-signature": signer.sign(entry[OUTBOX_FIELDS[0]], now, body),
        }
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                request = self.http.build_request(
                    "POST", target, content=body, headers=headers, extensions=extensions
                )
                response = await self.http.send(request, stream=True)
                await response.aclose()  # the receiver's body is not ours to read
        except TimeoutError:
            return Attempt(False, "timeout")
        except httpx.TimeoutException:
            return Attempt(False, "timeout")
        except (httpx.HTTPError, OSError) as error:
            log.info("subscription %s: %r", subscription.id, error)
            return Attempt(False, "connection")
        if 200 <= response.status_code < 300:
            return Attempt(True, status=response.status_code)
        if response.status_code == 410:
            return Attempt(False, "gone", 410)
        return Attempt(False, f"http_{response.status_code // 100}xx", response.status_code)

    async def _pinned_target(
        self, subscription: Subscription
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        """The URL with the host replaced by the address just checked (a DNS rebinding between
        the check and the connection cannot reach an internal address), the Host header and,
        for https, the name the certificate must carry."""
        host, port = check_url(subscription.url, allow_http=self.settings.webhook_allow_http)
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise AddressRefused(f"url: {host} does not resolve ({error})") from None
        addresses = [str(info[4][0]) for info in infos]
        if not self.settings.webhook_allow_private_addresses:
            addresses = check_addresses(host, addresses)
        address = addresses[0]
        parts = urlsplit(subscription.url)
        literal = f"[{address}]" if ":" in address else address
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
        return parts._replace(netloc=netloc).geturl(), {"host": parts.netloc}, extensions


@dataclass
class RetryState:
    entry: str
    first: float  # epoch seconds of the first attempt
    attempts: int
    next: float  # epoch seconds of the next attempt

    def to_json(self) -> bytes:
        return orjson.dumps(self.__dict__)


class Notifier:
    """One notifier process's work (see the module): ``run`` until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        redis: AnyRedis | None = None,
        http: httpx.AsyncClient | None = None,
        readiness: NotifierReadiness | None = None,
    ) -> None:
        self.settings = settings
        self.readiness = readiness or NotifierReadiness(settings.notifier_lease_seconds)
        self.redis = redis or connect(settings)
        self.layout = KeyLayout(settings.key_prefix)
        self.store = SubscriptionStore(self.redis, self.layout)
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.http = http or httpx.AsyncClient(
            follow_redirects=False,
            timeout=settings.webhook_timeout_seconds,
            limits=httpx.Limits(max_connections=settings.notifier_max_in_flight),
        )
        self.deliverer = Deliverer(settings, self.http)
        self.in_flight = asyncio.Semaphore(settings.notifier_max_in_flight)
        self.per_subscription: dict[str, asyncio.Semaphore] = {}
        self.held: set[int] = set()
        self.lanes: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.subscriptions: list[Subscription] = []
        self.kick = asyncio.Event()
        self.rng = random.Random()  # noqa: S311 - jitter, not a secret

    # --- the process ----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        loops = [
            asyncio.create_task(self._forever(self._hold_leases, stop, stop), name="leases"),
            asyncio.create_task(self._listen_for_wakes(stop), name="wakes"),
            asyncio.create_task(self._forever(self._scan, self.kick, stop), name="scan"),
        ]
        try:
            await stop.wait()
        finally:
            for task in [*loops, *self.lanes.values()]:
                task.cancel()
            await asyncio.gather(*loops, *self.lanes.values(), return_exceptions=True)
            with contextlib.suppress(RedisError, OSError):
                await self._leave()
            await self.http.aclose()

    async def _forever(
        self, step: Callable[[], Awaitable[float]], wake: asyncio.Event, stop: asyncio.Event
    ) -> None:
        """Run ``step`` again and again; it returns how long to wait at most (``wake`` cuts
        the wait short). Redis errors are logged and counted, and the step runs again a moment
        later: the process never stops on them."""
        while not stop.is_set():
            if wake is not stop:
                wake.clear()  # before the step: a wake-up during it runs the step again
            try:
                pause = await step()
                self.readiness.redis_answered()
            except (RedisError, OSError) as error:
                metrics.REDIS_ERRORS.inc()
                log.warning("notifier: Redis: %r (again in a second)", error)
                pause = 1.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await wake.wait()

    async def _listen_for_wakes(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            pubsub = connect_pubsub(self.settings).pubsub()
            try:
                await pubsub.subscribe(self.layout.outbox_wake_channel())
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.kick.set()
            except (RedisError, OSError) as error:
                log.info("notifier: wake channel lost (%r); the poll goes on", error)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    # --- leases ---------------------------------------------------------------------------
    async def _hold_leases(self) -> float:
        lease_ms = int(self.settings.notifier_lease_seconds * 1000)
        now_ms = int(time.time() * 1000)
        members = self.layout.notifier_members()
        await self.redis.zadd(members, {self.identity: now_ms + lease_ms})
        await self.redis.zremrangebyscore(members, "-inf", now_ms)
        live = max(1, await self.redis.zcard(members))
        shards = self.settings.notifier_shards
        share = math.ceil(shards / live)
        for shard in sorted(self.held):
            renewed = await self.redis.eval(
                _RENEW, 1, self.layout.notifier_lease(shard), self.identity, lease_ms
            )
            if not renewed:
                log.warning("notifier: lease of shard %d lost", shard)
                self._drop_shard(shard)
        for shard in sorted(self.held)[share:]:  # more than a share: give back the rest
            await self.redis.eval(_RELEASE, 1, self.layout.notifier_lease(shard), self.identity)
            self._drop_shard(shard)
        free = [shard for shard in range(shards) if shard not in self.held]
        self.rng.shuffle(free)
        for shard in free:
            if len(self.held) >= share:
                break
            key = self.layout.notifier_lease(shard)
            if await self.redis.set(key, self.identity, nx=True, px=lease_ms):
                self.held.add(shard)
                self.kick.set()
        metrics.SHARDS_HELD.set(len(self.held))
        return self.settings.notifier_lease_seconds / 3

    def _drop_shard(self, shard: int) -> None:
        self.held.discard(shard)
        for (member, subscription_id), task in list(self.lanes.items()):
            if shard_of(member, self.settings.notifier_shards) == shard:
                task.cancel()
                del self.lanes[(member, subscription_id)]

    async def _leave(self) -> None:
        for shard in sorted(self.held):
            await self.redis.eval(_RELEASE, 1, self.layout.notifier_lease(shard), self.identity)
        await self.redis.zrem(self.layout.notifier_members(), self.identity)

    # --- finding work ---------------------------------------------------------------------
    async def _scan(self) -> float:
        self.subscriptions = await self.store.all()
        due = await self.redis.zrange(self.layout.outbox_due(), 0, -1)
        metrics.DUE_CAMPAIGNS.set(len(due))
        shards = self.settings.notifier_shards
        for raw in due:
            member = raw.decode() if isinstance(raw, bytes) else str(raw)
            if shard_of(member, shards) in self.held:
                await self._start_lanes(member)
        return self.settings.notifier_poll_seconds

    async def _start_lanes(self, member: str) -> None:
        try:
            vdn_id, campaign_id = parse_due_member(member)
        except ValueError:
            log.warning("notifier: due member %r is not vdnId:campaignId; removed", member)
            await self.redis.zrem(self.layout.outbox_due(), member)
            return
        covering = [s for s in self.subscriptions if s.covers(vdn_id)]
        started = False
        for subscription in covering:
            key = (member, subscription.id)
            if key not in self.lanes:
                task = asyncio.create_task(self._lane(vdn_id, campaign_id, subscription))
                self.lanes[key] = task
                task.add_done_callback(functools.partial(self._lane_done, key))
                started = True
        if not started and not any(m == member for m, _ in self.lanes):
            await self._settle(vdn_id, campaign_id, covering)

    def _lane_done(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self.lanes.get(key) is task:
            del self.lanes[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("notifier: lane %s failed: %r", key, task.exception())
        self.kick.set()  # the campaign may be settled now

    # --- a lane ---------------------------------------------------------------------------
    async def _lane(self, vdn_id: int, campaign_id: str, subscription: Subscription) -> None:
        """Deliver the campaign's entries after the subscription's cursor, in order."""
        outbox = self.layout.campaign_outbox(vdn_id, campaign_id)
        cursors = self.layout.campaign_outbox_cursors(vdn_id, campaign_id)
        try:
            stored = await self.redis.hget(cursors, subscription.id)
            cursor = _text(stored) if stored is not None else subscription.start
            while True:
                entries = await self.redis.xrange(
                    outbox, min=f"({cursor}", max="+", count=ENTRIES_PER_READ
                )
                if not entries:
                    return
                for raw_id, raw_fields in entries:
                    entry_id = _text(raw_id)
                    fields = {_text(k): _text(v) for k, v in (raw_fields or {}).items()}
                    if not await self._deliver_entry(
                        vdn_id, campaign_id, subscription, entry_id, fields
                    ):
                        return  # the subscription was disabled or removed
                    await self.redis.eval(
                        _ADVANCE,
                        2,
                        cursors,
                        self.layout.campaign_outbox_retries(vdn_id, campaign_id),
                        subscription.id,
                        entry_id,
                    )
                    cursor = entry_id
        except (RedisError, OSError) as error:
            metrics.REDIS_ERRORS.inc()
            log.warning("notifier: lane %s/%s: Redis: %r", campaign_id, subscription.id, error)

    async def _deliver_entry(
        self,
        vdn_id: int,
        campaign_id: str,
        subscription: Subscription,
        entry_id: str,
        fields: dict[str, str],
    ) -> bool:
        """Deliver one entry (or give it up); False when the lane must stop."""
        problem = _malformed(fields)
        if problem is not None:
            await self._dead_letter(subscription, vdn_id, campaign_id, entry_id, fields, problem, 0)
            return True
        if not subscription.covers(vdn_id, fields["type"]):
            return True  # a kind it does not want: the cursor passes it
        retries = self.layout.campaign_outbox_retries(vdn_id, campaign_id)
        state = await self._retry_state(retries, subscription.id, entry_id)
        while True:
            delay = state.next - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if not await self._still_subscribed(subscription.id):
                return False
            result = await self._send(subscription, fields)
            state.attempts += 1
            metrics.ATTEMPTS.labels("delivered" if result.delivered else "failed").inc()
            if result.delivered:
                metrics.DELIVERY_LAG.observe(max(0.0, time.time() - _decided(fields)))
                return True
            metrics.FAILURES.labels(result.reason).inc()
            if result.reason == "gone" and self.settings.webhook_disable_on_gone:
                await self.store.disable(subscription.id, "410 Gone")
                metrics.SUBSCRIPTIONS_DISABLED.inc()
                log.warning("notifier: subscription %s disabled: 410 Gone", subscription.id)
                return False
            now = time.time()
            if now - state.first >= self.settings.webhook_retry_period_seconds:
                await self._dead_letter(
                    subscription, vdn_id, campaign_id, entry_id, fields, result.reason,
                    state.attempts,
                )  # fmt: skip
                return True
            state.next = now + retry_delay(
                state.attempts,
                self.settings.webhook_retry_first_seconds,
                self.settings.webhook_retry_max_seconds,
                self.rng,
            )
            await self.redis.hset(retries, subscription.id, state.to_json())

    async def _retry_state(self, retries: str, subscription_id: str, entry_id: str) -> RetryState:
        stored = await self.redis.hget(retries, subscription_id)
        if stored is not None:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                state = RetryState(**orjson.loads(stored))
                if state.entry == entry_id:
                    return state
        now = time.time()
        return RetryState(entry_id, now, 0, now)

    async def _still_subscribed(self, subscription_id: str) -> bool:
        current = await self.store.get(subscription_id)
        return current is not None and not current.disabled

    async def _send(self, subscription: Subscription, fields: dict[str, str]) -> Attempt:
        own = self.per_subscription.setdefault(
            subscription.id,
            asyncio.Semaphore(self.settings.notifier_max_in_flight_per_subscription),
        )
        async with own, self.in_flight:
            metrics.IN_FLIGHT.inc()
            try:
                return await self.deliverer.attempt(subscription, fields)
            finally:
                metrics.IN_FLIGHT.dec()

    async def _dead_letter(
        self,
        subscription: Subscription,
        vdn_id: int,
        campaign_id: str,
        entry_id: str,
        fields: dict[str, str],
        reason: str,
        attempts: int,
    ) -> None:
        letter: dict[Any, Any] = {
            "subscription": subscription.id,
            "vdnId": str(vdn_id),
            "campaignId": campaign_id,
            "entry": entry_id,
            "reason": reason,
            "attempts": str(attempts),
            **fields,
        }
        await self.redis.xadd(self.layout.webhook_dead_letters(), letter)
        metrics.DEAD_LETTERS.labels(reason.split(":", 1)[0]).inc()
        log.warning(
            "notifier: %s for %s given up after %d attempts (%s): dead letter",
            fields.get(OUTBOX_FIELDS[0], entry_id), subscription.id, attempts, reason,
        )  # fmt: skip

    # --- settling a campaign --------------------------------------------------------------
    async def _settle(self, vdn_id: int, campaign_id: str, covering: list[Subscription]) -> None:
        """Out of the due set once every covering cursor is at the last entry; trim."""
        outbox = self.layout.campaign_outbox(vdn_id, campaign_id)
        last = await _last_entry_id(self.redis, outbox)
        cursors_key = self.layout.campaign_outbox_cursors(vdn_id, campaign_id)
        positions: list[str] = []
        if covering:
            stored = await self.redis.hmget(cursors_key, [s.id for s in covering])
            positions = [
                _text(value) if value is not None else s.start
                for s, value in zip(covering, stored, strict=True)
            ]
        if last is not None:
            if any(stream_id_key(p) < stream_id_key(last) for p in positions):
                return  # a lane will start at the next scan
            lowest = min(positions, key=stream_id_key) if positions else last
            low = min(lowest, last, key=stream_id_key)
            await self.redis.xtrim(outbox, minid=stream_id_after(low), approximate=False)
        member = due_member(vdn_id, campaign_id)
        await self.redis.zrem(self.layout.outbox_due(), member)
        if await _last_entry_id(self.redis, outbox) != last and (await self.redis.xlen(outbox) > 0):
            await self.redis.zadd(self.layout.outbox_due(), {member: int(time.time() * 1000)})


async def _last_entry_id(redis: AnyRedis, outbox: str) -> str | None:
    entries = await redis.xrevrange(outbox, count=1)
    return _text(entries[0][0]) if entries else None


def _malformed(fields: dict[str, str]) -> str | None:
    missing = [name for name in OUTBOX_FIELDS if not fields.get(name)]
    if missing:
        return f"malformed: no {', '.join(missing)}"
    try:
        data = orjson.loads(fields[OUTBOX_FIELDS[3]])
    except orjson.JSONDecodeError:
        return "malformed: data is not JSON"
    if not isinstance(data, dict):
        return "malformed: data is not an object"
    return None


def _decided(fields: dict[str, str]) -> float:
    try:
        return datetime.fromisoformat(fields[OUTBOX_FIELDS[2]]).timestamp()
    except ValueError:
        return time.time()


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def run_notifier(
    settings: Settings,
    stop: asyncio.Event | None = None,
    readiness: NotifierReadiness | None = None,
) -> None:
    """Run one notifier until ``stop`` (or SIGTERM/SIGINT, in the command); ``readiness`` is
    what its metrics port answers on ``/readyz``."""
    notifier = Notifier(settings, readiness=readiness)
    try:
        await notifier.run(stop or asyncio.Event())
    finally:
        await notifier.redis.aclose()


async def replay_dead_letters(
    settings: Settings, subscription_id: str | None = None
) -> tuple[int, int]:
    """Send every dead letter (of one subscription, or all) once more, with its notification
    id; a delivered one leaves the dead letters. (delivered, still dead)."""
    redis = connect(settings)
    layout = KeyLayout(settings.key_prefix)
    store = SubscriptionStore(redis, layout)
    delivered = failed = 0
    async with httpx.AsyncClient(follow_redirects=False) as http:
        deliverer = Deliverer(settings, http)
        try:
            letters = await redis.xrange(layout.webhook_dead_letters())
            for raw_id, raw_fields in letters or []:
                fields = {_text(k): _text(v) for k, v in (raw_fields or {}).items()}
                if subscription_id is not None and fields.get("subscription") != subscription_id:
                    continue
                subscription = await store.get(fields.get("subscription", ""))
                if subscription is None or _malformed(fields) is not None:
                    failed += 1
                    continue
                result = await deliverer.attempt(subscription, fields)
                if result.delivered:
                    await redis.xdel(layout.webhook_dead_letters(), _text(raw_id))
                    delivered += 1
                else:
                    failed += 1
        finally:
            await redis.aclose()
    return delivered, failed
