"""The notifier: delivers every campaign's outbox to the subscriptions covering it, signed,
in order per campaign and subscription, retried until delivered or given up.

Sharing the work. The due set's members ("vdnId:campaignId") fall in ``notifier_shards``
shards by a stable hash (CRC-32); a notifier delivers the campaigns of the shards whose lease
it holds (``SET NX PX``, renewed by a compare-and-pexpire). Each notifier announces itself
in a members zset and holds about its share (shards / live notifiers); a notifier that dies
stops renewing, and its shards are taken within a lease time.

Fencing. A notifier counts a lease as its own only until a safe part of the lease time after
it sent the renewal that Redis granted (its own clock: Redis' expiry starts later). Past that
it sends nothing more of the shard's campaigns, and no request of it is still open then (a
request's timeout is cut to what is left of the lease): once another notifier can take the
shard, the old holder is silent. All leases are renewed in one round trip, first thing in the
lease loop, every third of a lease time.

A lane. One campaign and one subscription: the entries after the subscription's cursor, one
after the other (the next waits for the one before), each tried until a 2xx, with backoff and
full jitter, for ``webhook_retry_period_seconds``; then a dead letter and the cursor moves on.
Lanes run concurrently, with at most ``notifier_max_in_flight`` requests in flight and at most
``notifier_max_in_flight_per_subscription`` for any one subscription, so a slow or dead
receiver holds only its own share and delays no other. A lane's retry state (the entry, its
first attempt, attempts, the next attempt) is in Redis: a notifier killed mid-delivery is
replaced by one that resumes it; the entry is sent again with the same webhook-id.

Finding work. A scan reads, for every due campaign of a held shard at once, the stream's last
entry and the covering subscriptions' cursors: a lane starts only for a subscription behind.

Settling. When no lane of a campaign runs, and every covering subscription's cursor has
reached the stream's last entry, the campaign leaves the due set (removed, then checked again:
an entry written meanwhile puts it back), and the stream is trimmed past the lowest cursor: a
fully delivered outbox is empty, so that the workers' sweep (which puts a campaign whose outbox
holds entries back in the due set) leaves it out.

Cost. A delivery is one HTTP request on a kept-alive connection (delivery.py: a client per
receiver host, connecting to the address checked for it) and one script moving the cursor; a
lane's start is one round trip.
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
from datetime import datetime
from typing import Any

import orjson
from redis.exceptions import RedisError

from isales_stats.core.keys import KeyLayout
from isales_stats.core.notification_kinds import OUTBOX_FIELDS
from isales_stats.core.settings import Settings
from isales_stats.core.webhooks import (
    Subscription,
    retry_delay,
    stream_id_after,
    stream_id_key,
)
from isales_stats.engine.notifications import metrics
from isales_stats.engine.notifications.delivery import Attempt, Deliverer
from isales_stats.engine.notifications.outbox import due_member, parse_due_member
from isales_stats.engine.notifications.subscriptions import SubscriptionStore
from isales_stats.engine.redis_connection import (
    AnyRedis,
    LuaScript,
    connect,
    connect_pubsub,
    run_pipeline,
)

log = logging.getLogger(__name__)

ENTRIES_PER_READ = 100
# The part of a lease time a notifier counts on after sending a renewal Redis granted: the
# rest covers clocks running at slightly different rates.
LEASE_SAFE_PART = 0.9
_RENEW = LuaScript("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
""")
_RELEASE = LuaScript("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")
# A cursor only moves forward: a notifier that lost its lease and finishes a delivery late
# must not move a cursor the new holder already moved past.
_ADVANCE = LuaScript("""
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
""")


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


@dataclass
class RetryState:
    entry: str
    first: float  # epoch seconds of the first attempt
    attempts: int
    next: float  # epoch seconds of the next attempt

    def to_json(self) -> bytes:
        return orjson.dumps(self.__dict__)


def _retry_state(stored: bytes | str | None, entry_id: str) -> RetryState:
    """The stored retry state when it is this entry's, else a first attempt now."""
    if stored is not None:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            state = RetryState(**orjson.loads(stored))
            if state.entry == entry_id:
                return state
    now = time.time()
    return RetryState(entry_id, now, 0, now)


class Notifier:
    """One notifier process's work (see the module): ``run`` until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        redis: AnyRedis | None = None,
        readiness: NotifierReadiness | None = None,
    ) -> None:
        self.settings = settings
        self.readiness = readiness or NotifierReadiness(settings.notifier_lease_seconds)
        self.redis = redis or connect(settings)
        self.layout = KeyLayout(settings.key_prefix)
        self.store = SubscriptionStore(self.redis, self.layout)
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.deliverer = Deliverer(settings)
        self.in_flight = asyncio.Semaphore(settings.notifier_max_in_flight)
        self.per_subscription: dict[str, asyncio.Semaphore] = {}
        # The shards whose lease is ours, each until when (time.monotonic(); see "Fencing").
        self.held: dict[int, float] = {}
        self.leaving: set[int] = set()  # held shards being handed over: nothing new is sent
        self.handovers: set[asyncio.Task[None]] = set()
        self.lanes: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Lanes ended so far, and the count when each lane ended: a scan does not start a lane
        # from a cursor it read before that lane's end (the lane may have moved it since).
        self.lanes_ended = 0
        self.lane_ended_at: dict[tuple[str, str], int] = {}
        self.subscriptions: list[Subscription] = []
        self.active: set[str] = set()  # the ids of the subscriptions neither removed nor disabled
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
            tasks = [*loops, *self.handovers, *self.lanes.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(RedisError, OSError):
                await self._leave()
            await self.deliverer.aclose()

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
        lease_seconds = self.settings.notifier_lease_seconds
        lease_ms = int(lease_seconds * 1000)
        await self._renew_held(lease_seconds)  # first: nothing here may delay renewals
        now_ms = int(time.time() * 1000)
        members = self.layout.notifier_members()

        def announce(pipe: Any) -> None:
            pipe.zadd(members, {self.identity: now_ms + lease_ms})
            pipe.zremrangebyscore(members, "-inf", now_ms)
            pipe.zcard(members)

        live = max(1, int((await run_pipeline(self.redis, [], announce))[-1]))
        shards = self.settings.notifier_shards
        share = math.ceil(shards / live)
        for shard in sorted(set(self.held) - self.leaving)[share:]:  # give back the rest
            self.leaving.add(shard)
            handover = asyncio.create_task(self._hand_over(shard))
            self.handovers.add(handover)
            handover.add_done_callback(self.handovers.discard)
        free = [shard for shard in range(shards) if shard not in self.held]
        self.rng.shuffle(free)
        for shard in free:
            if len(self.held) >= share:
                break
            key = self.layout.notifier_lease(shard)
            sent = time.monotonic()
            if await self.redis.set(key, self.identity, nx=True, px=lease_ms):
                self.held[shard] = sent + lease_seconds * LEASE_SAFE_PART
                self.kick.set()
        metrics.SHARDS_HELD.set(len(self.held))
        return lease_seconds / 3

    async def _renew_held(self, lease_seconds: float) -> None:
        """Renew every lease held, in one round trip; a lease found lost is dropped."""
        lease_ms = int(lease_seconds * 1000)
        held = sorted(self.held)
        if held:
            sent = time.monotonic()

            def renew(pipe: Any) -> None:
                for shard in held:
                    _RENEW.queue(
                        pipe, [self.layout.notifier_lease(shard)], [self.identity, lease_ms]
                    )

            renewed = await run_pipeline(self.redis, [_RENEW], renew)
            for shard, answer in zip(held, renewed, strict=True):
                if answer:
                    self.held[shard] = sent + lease_seconds * LEASE_SAFE_PART
                else:
                    log.warning("notifier: lease of shard %d lost", shard)
                    metrics.LEASES_LOST.inc()
                    self._drop_shard(shard)

    def _lease_end(self, shard: int) -> float | None:
        """Until when (time.monotonic()) the shard's campaigns may be sent; None: not now (the
        lease may be lost, or the shard is being handed over)."""
        end = self.held.get(shard)
        if end is None or shard in self.leaving:
            return None
        return end if end > time.monotonic() else None

    async def _hand_over(self, shard: int) -> None:
        """Give a shard back without a repeat: no new request, the open ones answered (and
        their cursors moved), then the lease released (still renewed meanwhile)."""
        shards = self.settings.notifier_shards
        lanes = [task for (m, _), task in self.lanes.items() if shard_of(m, shards) == shard]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.notifier_lease_seconds):
                await asyncio.gather(*lanes, return_exceptions=True)
        self._drop_shard(shard)  # what still waits is a retry's backoff: cut short
        with contextlib.suppress(RedisError, OSError):
            await self._release(shard)

    def _drop_shard(self, shard: int) -> None:
        self.held.pop(shard, None)
        self.leaving.discard(shard)
        for (member, subscription_id), task in list(self.lanes.items()):
            if shard_of(member, self.settings.notifier_shards) == shard:
                task.cancel()
                del self.lanes[(member, subscription_id)]

    async def _release(self, shard: int) -> None:
        def queue(pipe: Any) -> None:
            _RELEASE.queue(pipe, [self.layout.notifier_lease(shard)], [self.identity])

        await run_pipeline(self.redis, [_RELEASE], queue)

    async def _leave(self) -> None:
        for shard in sorted(self.held):  # the lanes were stopped with the process
            self._drop_shard(shard)
            await self._release(shard)
        await self.redis.zrem(self.layout.notifier_members(), self.identity)

    # --- finding work ---------------------------------------------------------------------
    async def _scan(self) -> float:
        self.subscriptions = await self.store.all()
        self.active = {s.id for s in self.subscriptions if not s.disabled}
        campaigns = await self._due_campaigns()
        if not campaigns:
            return self.settings.notifier_poll_seconds

        def read_positions(pipe: Any) -> None:
            for _, vdn_id, campaign_id, covering in campaigns:
                pipe.xrevrange(self.layout.campaign_outbox(vdn_id, campaign_id), count=1)
                pipe.hmget(
                    self.layout.campaign_outbox_cursors(vdn_id, campaign_id),
                    [s.id for s in covering] or ["-"],
                )

        ended_before_read = self.lanes_ended
        replies = await run_pipeline(self.redis, [], read_positions)
        for index, (member, vdn_id, campaign_id, covering) in enumerate(campaigns):
            newest, stored = replies[2 * index], replies[2 * index + 1]
            last = _text(newest[0][0]) if newest else None
            positions = [
                _text(value) if value is not None else s.start
                for s, value in zip(covering, stored, strict=False)
            ]
            for subscription, position in zip(covering, positions, strict=True):
                key = (member, subscription.id)
                if self.lane_ended_at.get(key, -1) >= ended_before_read:
                    continue  # its cursor was read stale: the next scan (kicked) starts it
                if last is not None and stream_id_key(position) < stream_id_key(last):
                    self._start_lane(member, vdn_id, campaign_id, subscription, position)
            if not any(m == member for m, _ in self.lanes):
                await self._settle(vdn_id, campaign_id, covering)
        self.lane_ended_at = {
            key: count for key, count in self.lane_ended_at.items() if count >= ended_before_read
        }
        return self.settings.notifier_poll_seconds

    async def _due_campaigns(self) -> list[tuple[str, int, str, list[Subscription]]]:
        """The due campaigns of the shards held: member, VDN, campaign, covering subscriptions."""
        due = await self.redis.zrange(self.layout.outbox_due(), 0, -1)
        metrics.DUE_CAMPAIGNS.set(len(due))
        campaigns: list[tuple[str, int, str, list[Subscription]]] = []
        for raw in due:
            member = raw.decode() if isinstance(raw, bytes) else str(raw)
            if self._lease_end(shard_of(member, self.settings.notifier_shards)) is None:
                continue
            try:
                vdn_id, campaign_id = parse_due_member(member)
            except ValueError:
                log.warning("notifier: due member %r is not vdnId:campaignId; removed", member)
                await self.redis.zrem(self.layout.outbox_due(), member)
                continue
            covering = [s for s in self.subscriptions if s.covers(vdn_id)]
            campaigns.append((member, vdn_id, campaign_id, covering))
        return campaigns

    def _start_lane(
        self, member: str, vdn_id: int, campaign_id: str, subscription: Subscription, cursor: str
    ) -> None:
        key = (member, subscription.id)
        if key in self.lanes:
            return
        task = asyncio.create_task(self._lane(member, vdn_id, campaign_id, subscription, cursor))
        self.lanes[key] = task
        task.add_done_callback(functools.partial(self._lane_done, key))

    def _lane_done(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self.lanes.get(key) is task:
            del self.lanes[key]
        self.lane_ended_at[key] = self.lanes_ended
        self.lanes_ended += 1
        if not task.cancelled() and task.exception() is not None:
            log.error("notifier: lane %s failed: %r", key, task.exception())
        self.kick.set()  # the campaign may be settled now

    # --- a lane ---------------------------------------------------------------------------
    async def _lane(
        self,
        member: str,
        vdn_id: int,
        campaign_id: str,
        subscription: Subscription,
        cursor: str,
    ) -> None:
        """Deliver the campaign's entries after ``cursor`` (the subscription's), in order."""
        outbox = self.layout.campaign_outbox(vdn_id, campaign_id)
        cursors = self.layout.campaign_outbox_cursors(vdn_id, campaign_id)
        retries = self.layout.campaign_outbox_retries(vdn_id, campaign_id)
        shard = shard_of(member, self.settings.notifier_shards)
        try:
            # The retry state can only be the first entry's: moving the cursor clears it.
            def first_read(pipe: Any) -> None:
                pipe.hget(retries, subscription.id)
                pipe.xrange(outbox, min=f"({cursor}", max="+", count=ENTRIES_PER_READ)

            stored_retry, entries = await run_pipeline(self.redis, [], first_read)
            while entries:
                for raw_id, raw_fields in entries:
                    entry_id = _text(raw_id)
                    fields = {_text(k): _text(v) for k, v in (raw_fields or {}).items()}
                    state = _retry_state(stored_retry, entry_id)
                    if not await self._deliver_entry(
                        vdn_id, campaign_id, subscription, shard, entry_id, fields, state
                    ):
                        return  # the lease may be lost, or the subscription went
                    await self._advance(cursors, retries, subscription.id, entry_id)
                    cursor = entry_id
                entries = await self.redis.xrange(
                    outbox, min=f"({cursor}", max="+", count=ENTRIES_PER_READ
                )
        except (RedisError, OSError) as error:
            metrics.REDIS_ERRORS.inc()
            log.warning("notifier: lane %s/%s: Redis: %r", campaign_id, subscription.id, error)

    async def _advance(
        self, cursors: str, retries: str, subscription_id: str, entry_id: str
    ) -> None:
        def queue(pipe: Any) -> None:
            _ADVANCE.queue(pipe, [cursors, retries], [subscription_id, entry_id])

        await run_pipeline(self.redis, [_ADVANCE], queue)

    async def _deliver_entry(
        self,
        vdn_id: int,
        campaign_id: str,
        subscription: Subscription,
        shard: int,
        entry_id: str,
        fields: dict[str, str],
        state: RetryState,
    ) -> bool:
        """Deliver one entry (or give it up); False when the lane must stop."""
        problem = _malformed(fields)
        if problem is not None:
            await self._dead_letter(subscription, vdn_id, campaign_id, entry_id, fields, problem, 0)
            return True
        if not subscription.covers(vdn_id, fields["type"]):
            return True  # a kind it does not want: the cursor passes it
        retries = self.layout.campaign_outbox_retries(vdn_id, campaign_id)
        while True:
            delay = state.next - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lease_end = self._may_send(subscription, shard)
            if lease_end is None:
                return False
            result = await self._send(subscription, fields, lease_end)
            if result.reason == "lease" and self._lease_end(shard) is None:
                return False  # not the receiver's failure: the next holder tries it
            state.attempts += 1
            metrics.ATTEMPTS.labels("delivered" if result.delivered else "failed").inc()
            if result.delivered:
                metrics.DELIVERY_LAG.observe(max(0.0, time.time() - _decided(fields)))
                return True
            reason = "timeout" if result.reason == "lease" else result.reason  # renewed since
            metrics.FAILURES.labels(reason).inc()
            if result.reason == "gone" and self.settings.webhook_disable_on_gone:
                await self._disable_gone(subscription)
                return False
            now = time.time()
            if now - state.first >= self.settings.webhook_retry_period_seconds:
                await self._dead_letter(
                    subscription, vdn_id, campaign_id, entry_id, fields, reason,
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

    def _may_send(self, subscription: Subscription, shard: int) -> float | None:
        """The lease's end when the subscription may be sent to now; None when it was removed
        or disabled (as of the last scan) or when the shard's lease may be lost (fenced:
        another notifier may hold it)."""
        if subscription.id not in self.active:
            return None
        return self._lease_end(shard)

    async def _disable_gone(self, subscription: Subscription) -> None:
        await self.store.disable(subscription.id, "410 Gone")
        self.active.discard(subscription.id)
        metrics.SUBSCRIPTIONS_DISABLED.inc()
        log.warning("notifier: subscription %s disabled: 410 Gone", subscription.id)

    async def _send(
        self, subscription: Subscription, fields: dict[str, str], lease_end: float
    ) -> Attempt:
        own = self.per_subscription.setdefault(
            subscription.id,
            asyncio.Semaphore(self.settings.notifier_max_in_flight_per_subscription),
        )
        async with own, self.in_flight:
            metrics.IN_FLIGHT.inc()
            try:
                return await self.deliverer.attempt(subscription, fields, lease_end)
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
    deliverer = Deliverer(settings)
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
        await deliverer.aclose()
        await redis.aclose()
    return delivered, failed
