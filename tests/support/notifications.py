"""What the notification tests share: subscriptions made in Redis, a steady outbox writer, and
the checks of what receivers got (every id, in order per campaign, signatures that hold)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.core.webhooks import Subscription
from isales_stats.engine.notifications.outbox import append_notification
from isales_stats.engine.notifications.subscriptions import SubscriptionStore
from isales_stats.engine.redis_connection import connect


def notifier_settings(settings: Settings, **overrides: Any) -> Settings:
    """Small timeouts and backoffs, so that minutes of trouble fit in a test."""
    return settings.model_copy(
        update={
            "webhook_allow_http": True,
            "webhook_allow_private_addresses": True,
            "webhook_timeout_seconds": 1.0,
            "webhook_retry_first_seconds": 0.2,
            "webhook_retry_max_seconds": 2.0,
            "webhook_retry_period_seconds": 600.0,
            "notifier_lease_seconds": 2.0,
            "notifier_poll_seconds": 0.5,
            "notifier_metrics_port": 0,
            **overrides,
        }
    )


def subscribe(settings: Settings, url: str, vdns: tuple[int, ...]) -> Subscription:
    async def create() -> Subscription:
        redis = connect(settings)
        try:
            store = SubscriptionStore(redis, KeyLayout(settings.key_prefix))
            return await store.create(url, vdns, ())
        finally:
            await redis.aclose()

    return asyncio.run(create())


@dataclass
class OutboxWriter:
    """Appends notifications to some campaigns at a steady rate, in a thread, until stopped."""

    settings: Settings
    vdn_id: int
    campaigns: tuple[str, ...]
    per_second: float
    written: list[tuple[str, str]] = field(default_factory=list)  # (campaign, id)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> OutboxWriter:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    async def _run(self) -> None:
        redis = connect(self.settings)
        layout = KeyLayout(self.settings.key_prefix)
        try:
            number = 0
            while not self._stop.is_set():
                campaign = self.campaigns[number % len(self.campaigns)]
                notification_id, _ = await append_notification(
                    redis, layout, self.vdn_id, campaign, "abandon.warning",
                    {"window": "today", "n": number},
                )  # fmt: skip
                self.written.append((campaign, notification_id))
                number += 1
                await asyncio.sleep(1 / self.per_second)
        finally:
            await redis.aclose()


def sequence_of(notification_id: str) -> int:
    return int(notification_id.rsplit("_", 1)[1])


def check_deliveries(
    accepted: list[dict[str, Any]], written: list[tuple[str, str]], secret: str
) -> None:
    """Every written id accepted at least once, each campaign's in order, each signed."""
    signer = Webhook(secret)
    delivered: dict[str, list[int]] = defaultdict(list)
    for request in accepted:
        payload = signer.verify(request["body"], request["headers"])  # raises when it fails
        assert payload["data"]["campaignId"], payload
        delivered[payload["data"]["campaignId"]].append(
            sequence_of(request["headers"]["webhook-id"])
        )
    ids = {request["headers"]["webhook-id"] for request in accepted}
    missing = [notification_id for _, notification_id in written if notification_id not in ids]
    assert not missing, f"{len(missing)} notifications never accepted, e.g. {missing[:3]}"
    for campaign, sequences in delivered.items():
        highest = 0
        for sequence in sequences:
            # A repeat (same id) may come again; a new one only right after the one before.
            assert sequence <= highest + 1, (campaign, sequences)
            highest = max(highest, sequence)


def latencies(accepted: list[dict[str, Any]]) -> list[float]:
    """Seconds from each notification's decision to its first acceptance."""
    first: dict[str, float] = {}
    for request in accepted:
        notification_id = request["headers"]["webhook-id"]
        if notification_id not in first:
            decided = datetime.fromisoformat(_payload(request)["timestamp"]).timestamp()
            first[notification_id] = request["arrived"] - decided
    return sorted(first.values())


def percentile(values: list[float], share: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(share * 100) - 1]


def _payload(request: dict[str, Any]) -> dict[str, Any]:
    import json

    payload: dict[str, Any] = json.loads(request["body"])
    return payload


def wait_seconds(seconds: float) -> None:
    """A phase of a fault lasting this long (not a wait for a condition)."""
    time.sleep(seconds)
