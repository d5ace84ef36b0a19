"""One API process's side of push: which VDNs it watches, what changed, who gets it.

Counting records every change of a campaign in the campaign's change stream and names the
campaign on the VDN's Pub/Sub channel (engine/count_events/). The hub of a process listens to
the channels of the VDNs its subscribers watch, reads each named campaign's new changes once
(a cursor per campaign), paces them to ``max_events_per_second`` per campaign, and offers each to
the subscribers that want it. Pub/Sub only wakes it up: a message lost (a connection that
dropped, a slow reader cut off by Redis) costs latency, never a change, because on every
(re)connection, and every ``sweep_seconds`` besides, the hub reads every watched campaign's
changes after its cursor. Nothing here is needed by another process: a subscriber resumes on any
of them from the streams in Redis (api/push/stream.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from isales_stats.api import metrics
from isales_stats.api.errors import ApiError, ErrorCode
from isales_stats.api.push.subscriber import Subscriber
from isales_stats.core.days import today_in
from isales_stats.core.interface import ChangeId
from isales_stats.core.settings import Settings
from isales_stats.engine.changes import BEFORE_ANY_CHANGE, CampaignChange, ChangeReader
from isales_stats.engine.redis_connection import text_of

log = logging.getLogger(__name__)

# Wait this long before listening again after Redis failed the Pub/Sub connection.
RECONNECT_SECONDS = 1.0
# How often the listener looks again while no VDN is watched.
IDLE_SECONDS = 0.1


@dataclass
class _Pacing:
    """A campaign's events under the rate: when the next may go, and the latest held back."""

    next_at: float = 0.0
    pending: CampaignChange | None = None
    timer: asyncio.TimerHandle | None = None


@dataclass
class _Watch:
    """A VDN watched for its subscribers: the hub's cursor per campaign, and its pacing.

    ``since`` is where a campaign the hub has not read yet is read from: when the watch began,
    less the resume margin (a change recorded before it is in each subscriber's first read).
    """

    since: ChangeId
    subscribers: set[Subscriber] = field(default_factory=set)
    cursors: dict[str, ChangeId] = field(default_factory=dict)
    pacing: dict[str, _Pacing] = field(default_factory=dict)


class ChangeHub:
    """Subscribers of this process by VDN, and the tasks that feed them (``start``/``close``)."""

    def __init__(self, reader: ChangeReader, pubsub_redis: Redis, settings: Settings) -> None:
        self.reader = reader
        self.pubsub_redis = pubsub_redis
        self.layout = reader.layout
        self.settings = settings  # its push_* settings
        rate = settings.push_max_events_per_second
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._watched: dict[int, _Watch] = {}
        self._per_key: Counter[str] = Counter()
        self._subscribers = 0
        # What the reader task is to read: campaigns named on a channel, and whole VDNs (every
        # live campaign: a new watch, a reconnection, the sweep).
        self._dirty: dict[int, set[str]] = {}
        self._whole: set[int] = set()
        self._wake = asyncio.Event()
        self._pubsub: Any = None
        # One (un)subscription at a time: concurrent ones on a Pub/Sub object that has no
        # connection yet would each open one.
        self._subscribing = asyncio.Lock()
        self._closing = False
        self._clock_offset_ms = 0  # Redis' clock less this host's (redis_now_ms)
        self._pubsub_failed = False  # a (un)subscription failed: listen again, from scratch
        self._sends: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # --- subscribers -------------------------------------------------------------------------

    def subscribe(self, vdn_id: int, campaign_id: str | None, key: str) -> Subscriber:
        """A subscriber of the VDN (or one campaign of it), registered before anything is read
        for it, so that every change from now on reaches its queue; ``ApiError`` over a cap."""
        settings = self.settings
        if self._closing:
            raise _elsewhere("this API process is stopping", retry_after=1)
        most, most_of_key = settings.push_max_subscribers, settings.push_max_subscribers_per_key
        if most and self._subscribers >= most:
            metrics.PUSH_REFUSED.labels("process").inc()
            raise _elsewhere(
                f"this API process serves its most subscribers ({most}, "
                "ISALES_PUSH_MAX_SUBSCRIBERS)",
                retry_after=5,
            )
        if most_of_key and self._per_key[key] >= most_of_key:
            metrics.PUSH_REFUSED.labels("key").inc()
            raise ApiError(
                429,
                ErrorCode.TOO_FREQUENT,
                f"this key has {most_of_key} subscribers on this API process already "
                "(ISALES_PUSH_MAX_SUBSCRIBERS_PER_KEY); close one first",
            )
        subscriber = Subscriber(vdn_id, campaign_id, key, settings.push_queue_events)
        watch = self._watched.get(vdn_id)
        if watch is None:
            since = max(self.redis_now_ms() - settings.push_resume_margin_ms, 0)
            watch = _Watch((since, 0))
            self._watched[vdn_id] = watch
            self._listen_to(vdn_id)
        watch.subscribers.add(subscriber)
        self._subscribers += 1
        self._per_key[key] += 1
        metrics.PUSH_SUBSCRIBERS.inc()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        watch = self._watched.get(subscriber.vdn_id)
        if watch is None or subscriber not in watch.subscribers:
            return
        watch.subscribers.discard(subscriber)
        self._subscribers -= 1
        self._per_key[subscriber.key] -= 1
        if not self._per_key[subscriber.key]:
            del self._per_key[subscriber.key]
        metrics.PUSH_SUBSCRIBERS.dec()
        if not watch.subscribers:
            for pacing in watch.pacing.values():
                if pacing.timer is not None:
                    pacing.timer.cancel()
            del self._watched[subscriber.vdn_id]
            self._dirty.pop(subscriber.vdn_id, None)
            self._stop_listening_to(subscriber.vdn_id)

    def today_of(self, vdn_id: int) -> str:
        """Today in the VDN's zone: the day whose daily counters a snapshot from rows carries."""
        return today_in(self.settings.time_zone_of(vdn_id)).isoformat()

    def redis_now_ms(self) -> int:
        """Now on Redis' clock, which stamps the changes' ids: this host's clock corrected by
        the difference measured at start and at every sweep."""
        return time.time_ns() // 1_000_000 + self._clock_offset_ms

    async def _measure_clock(self) -> None:
        before = time.time_ns() // 1_000_000
        seconds, microseconds = await self.reader.redis.time()
        after = time.time_ns() // 1_000_000
        self._clock_offset_ms = seconds * 1000 + microseconds // 1000 - (before + after) // 2

    # --- the tasks ---------------------------------------------------------------------------

    async def start(self) -> None:
        with contextlib.suppress(RedisError, OSError):  # Redis down: measured at the sweep
            await self._measure_clock()
        loop = asyncio.get_running_loop()
        for work in (self._listen, self._read, self._sweep):
            self._tasks.append(loop.create_task(work(), name=f"push {work.__name__}"))

    def end_streams(self) -> None:
        """Drop every subscriber, and refuse new ones: the server is stopping. A stream never
        ends by itself, and uvicorn waits for every response to end before it stops; each
        client resumes on another process with its last id."""
        self._closing = True
        for watch in list(self._watched.values()):
            for subscriber in list(watch.subscribers):
                subscriber.drop("shutdown")

    async def close(self) -> None:
        self.end_streams()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.pubsub_redis.aclose()

    async def _listen(self) -> None:
        """Follow the watched VDNs' channels; reconnect and read everything after a failure."""
        while True:
            pubsub = self.pubsub_redis.pubsub()
            try:
                async with self._subscribing:
                    channels = [self.layout.vdn_changes_channel(vdn) for vdn in self._watched]
                    if channels:
                        await pubsub.subscribe(*channels)
                    self._pubsub = pubsub
                while not self._pubsub_failed:
                    if not pubsub.subscribed:  # no VDN watched: nothing to read (yet)
                        await asyncio.sleep(IDLE_SECONDS)
                        continue
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_message(message)
                metrics.PUSH_RECONNECTS.inc()
                log.warning("push: a Pub/Sub (un)subscription failed; listening again")
            except (RedisError, OSError) as error:
                metrics.PUSH_RECONNECTS.inc()
                log.warning("push: Redis Pub/Sub failed (%s); listening again in %.0f s",
                            error, RECONNECT_SECONDS)  # fmt: skip
            except Exception:
                # A bug must not end push for the process: logged, counted, and listened again.
                metrics.PUSH_RECONNECTS.inc()
                log.exception("push: listening failed; listening again")
            finally:
                self._pubsub = None
                self._pubsub_failed = False
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(RECONNECT_SECONDS)

    def _on_message(self, message: dict[str, Any]) -> None:
        channel = text_of(message["channel"])
        vdn_id = int(channel.rsplit(":", 1)[1])
        if vdn_id not in self._watched:
            return
        if message["type"] == "message":
            self._dirty.setdefault(vdn_id, set()).add(text_of(message["data"]))
        elif message["type"] == "subscribe":
            # Listening from now on: what was recorded before is read once, whole.
            self._whole.add(vdn_id)
        self._wake.set()

    def _listen_to(self, vdn_id: int) -> None:
        self._send_soon("subscribe", self.layout.vdn_changes_channel(vdn_id))

    def _stop_listening_to(self, vdn_id: int) -> None:
        self._send_soon("unsubscribe", self.layout.vdn_changes_channel(vdn_id))

    def _send_soon(self, command: str, channel: str) -> None:
        task = asyncio.get_running_loop().create_task(self._send(command, channel))
        self._sends.add(task)  # kept until done: the loop holds tasks only weakly
        task.add_done_callback(self._sends.discard)

    async def _send(self, command: str, channel: str) -> None:
        async with self._subscribing:
            pubsub = self._pubsub
            if pubsub is None:  # not listening: the listener subscribes to all when it is
                return
            try:
                await getattr(pubsub, command)(channel)
            except (RedisError, OSError):
                # The listener starts again, subscribing to every watched VDN's channel.
                self._pubsub_failed = True

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.settings.push_sweep_seconds)
            with contextlib.suppress(RedisError, OSError):
                await self._measure_clock()
            self._whole.update(self._watched)
            self._wake.set()

    async def _read(self) -> None:
        """Read what the channels named, once for every subscriber, and offer it."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, {}
            whole, self._whole = self._whole, set()
            try:
                for vdn_id in whole:
                    if vdn_id in self._watched:
                        listed = await self.reader.live_campaigns(vdn_id)
                        dirty.setdefault(vdn_id, set()).update(listed)
                for vdn_id, named in dirty.items():
                    await self._read_vdn(vdn_id, named)
            except Exception as error:  # Redis failing, or a bug: the task must go on
                # Read again in a moment: nothing is lost, the cursors did not move.
                metrics.PUSH_READ_ERRORS.inc()
                if isinstance(error, RedisError | OSError):
                    log.warning("push: reading changes failed (%s)", error)
                else:
                    log.exception("push: reading changes failed")
                for vdn_id, campaigns in dirty.items():
                    self._dirty.setdefault(vdn_id, set()).update(campaigns)
                self._whole.update(whole)
                await asyncio.sleep(RECONNECT_SECONDS)
                self._wake.set()

    async def _read_vdn(self, vdn_id: int, campaigns: set[str]) -> None:
        watch = self._watched.get(vdn_id)
        if watch is None:
            return
        points = [
            (campaign_id, watch.cursors.get(campaign_id, watch.since))
            for campaign_id in sorted(campaigns)
        ]
        reads = await self.reader.read(vdn_id, points, self.today_of(vdn_id))
        if self._watched.get(vdn_id) is not watch:  # unwatched while reading
            return
        for read in reads:
            for change in read.changes:
                self._deliver(watch, change)

    # --- pacing and fan-out ------------------------------------------------------------------

    def _deliver(self, watch: _Watch, change: CampaignChange) -> None:
        campaign_id = change.campaign_id
        if change.change_id <= watch.cursors.get(campaign_id, BEFORE_ANY_CHANGE):
            return
        watch.cursors[campaign_id] = change.change_id
        if not self.interval:
            self._fan_out(watch, change)
            return
        loop = asyncio.get_running_loop()
        pacing = watch.pacing.setdefault(campaign_id, _Pacing())
        now = loop.time()
        if pacing.timer is None and now >= pacing.next_at:
            pacing.next_at = now + self.interval
            self._fan_out(watch, change)
            return
        # Coalesced: the latest change stands for those before it (it carries every counter).
        pacing.pending = change
        if pacing.timer is None:
            pacing.timer = loop.call_later(pacing.next_at - now, self._flush, watch, campaign_id)

    def _flush(self, watch: _Watch, campaign_id: str) -> None:
        pacing = watch.pacing[campaign_id]
        change, pacing.pending, pacing.timer = pacing.pending, None, None
        if change is not None:
            pacing.next_at = asyncio.get_running_loop().time() + self.interval
            self._fan_out(watch, change)

    def _fan_out(self, watch: _Watch, change: CampaignChange) -> None:
        for subscriber in watch.subscribers:
            if subscriber.wants(change.campaign_id) and not subscriber.offer(change):
                metrics.PUSH_DROPPED.labels("slow").inc()


def _elsewhere(reason: str, retry_after: int) -> ApiError:
    """503: this process cannot take the subscriber; another one, or this one later, can."""
    return ApiError(
        503,
        ErrorCode.UNAVAILABLE,
        f"{reason}; try again, or another process",
        headers={"Retry-After": str(retry_after)},
    )
