"""Webhook subscriptions in Redis: created, listed, removed, disabled (one hash of JSON).

A new subscription starts at the current end of every campaign's outbox: its ``start`` is
Redis' clock at its creation, as a stream id, and it gets the entries after it (a campaign
whose cursor it has none of yet starts there). No campaign needs to be walked to create one.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from isales_stats.core.keys import KeyLayout
from isales_stats.core.webhooks import Subscription, new_secret, new_subscription_id
from isales_stats.engine.redis_connection import AnyRedis


class SubscriptionStore:
    def __init__(self, redis: AnyRedis, layout: KeyLayout) -> None:
        self.redis = redis
        self.layout = layout

    async def create(
        self, url: str, vdns: tuple[int, ...], kinds: tuple[str, ...], access_key: str = ""
    ) -> Subscription:
        seconds, microseconds = await self.redis.time()
        start = f"{int(seconds) * 1000 + int(microseconds) // 1000}-0"
        subscription = Subscription(
            id=new_subscription_id(),
            url=url,
            vdns=tuple(sorted(set(vdns))),
            secret=new_secret(),
            kinds=tuple(sorted(set(kinds))),
            start=start,
            created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            access_key=access_key,
        )
        await self.redis.hset(
            self.layout.webhook_subscriptions(), subscription.id, subscription.to_json()
        )
        return subscription

    async def all(self) -> list[Subscription]:
        stored = await self.redis.hgetall(self.layout.webhook_subscriptions())
        return sorted(
            (Subscription.from_json(text) for text in stored.values()), key=lambda s: s.id
        )

    async def get(self, subscription_id: str) -> Subscription | None:
        text = await self.redis.hget(self.layout.webhook_subscriptions(), subscription_id)
        return Subscription.from_json(text) if text is not None else None

    async def remove(self, subscription_id: str) -> bool:
        removed = await self.redis.hdel(self.layout.webhook_subscriptions(), subscription_id)
        return bool(removed)

    async def disable(self, subscription_id: str, reason: str) -> None:
        subscription = await self.get(subscription_id)
        if subscription is None:
            return
        disabled = dataclasses.replace(subscription, disabled=reason)
        await self.redis.hset(
            self.layout.webhook_subscriptions(), subscription_id, disabled.to_json()
        )
