"""The engine's ``EventCounter`` built for a test, and JSON events counted with it.

Built in one place, on a ``CountingContext`` made here, so that a new field of the context is
set once. The counter is made
on a Redis client the test opened itself: an asyncio client belongs to the event loop it was
made in, and each test runs its own (``asyncio.run``, anyio), so no fixture can hold one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import tzinfo
from typing import Any

from redis.asyncio import Redis

from isales_stats.core.days import Clock, system_clock
from isales_stats.core.events import event_from_json
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.context import CountingContext
from isales_stats.engine.counting import NO_LIMITS, CountingLimits, EventCounter
from isales_stats.engine.redis_connection import AnyRedis
from tests.support.clock import GMT8

# The engine's default (Settings.daily_retention_days), fixed here: the tests' clocks and
# days are chosen against it, whatever a developer's environment says.
RETENTION_DAYS = 40


class EventCounters:
    """Makes counters with a test's settings (its key prefix): what the ``event_counter``
    fixture gives.

    Every VDN is in GMT+08:00 unless ``zone_of`` says else; the clock is the system's unless
    a test fixes one; no counting limits unless a test sets some.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def context(
        self,
        *,
        key_prefix: str | None = None,
        zone_of: Callable[[int], tzinfo] = lambda vdn_id: GMT8,
        retention_days: int = RETENTION_DAYS,
        clock: Clock = system_clock,
        limits: CountingLimits = NO_LIMITS,
    ) -> CountingContext:
        """The context of a counter (and of the lifecycle and readers a test puts beside it)."""
        return CountingContext.from_settings(
            self.settings,
            layout=KeyLayout(key_prefix or self.settings.key_prefix),
            zone_of=zone_of,
            retention_days=retention_days,
            clock=clock,
            limits=limits,
        )

    def __call__(
        self,
        redis: AnyRedis,
        *,
        key_prefix: str | None = None,
        zone_of: Callable[[int], tzinfo] = lambda vdn_id: GMT8,
        retention_days: int = RETENTION_DAYS,
        clock: Clock = system_clock,
        limits: CountingLimits = NO_LIMITS,
    ) -> EventCounter:
        context = self.context(
            key_prefix=key_prefix,
            zone_of=zone_of,
            retention_days=retention_days,
            clock=clock,
            limits=limits,
        )
        return EventCounter(redis, context)


async def count_events(settings: Settings, events: Sequence[dict[str, Any]]) -> None:
    """Apply the JSON ``events`` to the counters exactly as a worker with ``settings`` would."""
    redis = Redis.from_url(settings.redis_url)
    try:
        counter = EventCounters(settings)(
            redis,
            zone_of=settings.time_zone_of,
            retention_days=settings.daily_retention_days,
        )
        await counter.count([event_from_json(event) for event in events])
    finally:
        await redis.aclose()
