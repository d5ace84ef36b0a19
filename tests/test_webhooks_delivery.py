"""Real notifier processes delivering a steady outbox to real receivers on the local stack's
Redis: every notification once per subscription (no repeat while nothing fails), and every
delivered campaign out of the due set, its outbox empty (the workers' sweep puts a campaign
whose outbox holds entries back in the due set: a delivered one must hold none).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.notifications.outbox import append_notification
from isales_stats.engine.redis_connection import connect, text_of
from tests.support.notifications import (
    OutboxWriter,
    check_deliveries,
    notifier_settings,
    subscribe,
    wait_seconds,
)
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import Receiver

pytestmark = [pytest.mark.stack, pytest.mark.slow]

VDN = 11
CAMPAIGNS = tuple(f"c-{n}" for n in range(12))
SUBSCRIPTIONS = 6


def _outbox_state(settings: Settings) -> tuple[list[str], list[int]]:
    """The due set's members of this test's VDN, and the length of each campaign's outbox."""

    async def read() -> tuple[list[str], list[int]]:
        redis = connect(settings)
        layout = KeyLayout(settings.key_prefix)
        try:
            members: list[bytes] = await redis.zrange(layout.outbox_due(), 0, -1)  # type: ignore[assignment]
            due = [text_of(m) for m in members if text_of(m).startswith(f"{VDN}:")]
            lengths = [await redis.xlen(layout.campaign_outbox(VDN, c)) for c in CAMPAIGNS]
            return due, lengths
        finally:
            await redis.aclose()

    return asyncio.run(read())


def _append_one(settings: Settings, campaign: str) -> str:
    async def append() -> str:
        redis = connect(settings)
        try:
            notification_id, _ = await append_notification(
                redis, KeyLayout(settings.key_prefix), VDN, campaign, "abandon.ok", {"n": -1}
            )
            return notification_id
        finally:
            await redis.aclose()

    return asyncio.run(append())


def test_two_notifiers_deliver_each_notification_once_and_leave_the_due_set_empty(
    test_settings: Settings, tmp_path: Path
) -> None:
    # The deployment's lease (10 s), not the tests' short one: repeats showed with it.
    settings = notifier_settings(test_settings, notifier_lease_seconds=10.0)
    receivers = [Receiver(settings, tmp_path, f"receiver{n}").start() for n in range(2)]
    subscriptions = [
        subscribe(settings, f"{receivers[n % 2].url}/{n}", (VDN,)) for n in range(SUBSCRIPTIONS)
    ]
    notifiers = [
        ServiceProcess(settings, "notifier", "--loglevel", "info", log_dir=tmp_path).start()
        for _ in range(2)
    ]
    writer = OutboxWriter(settings, VDN, CAMPAIGNS, per_second=40).start()
    try:
        wait_seconds(20)
        writer.stop()
        wanted = {(str(n), nid) for n in range(SUBSCRIPTIONS) for _, nid in writer.written}

        def delivered() -> set[tuple[str, str]]:
            """(subscription number, notification id) pairs accepted so far."""
            return {
                (r["path"].rsplit("/", 1)[1], r["headers"]["webhook-id"])
                for receiver in receivers
                for r in receiver.accepted()
            }

        assert wait_for(lambda: delivered() >= wanted, 120), notifiers[0].log()
        # Settled: every campaign left the due set and its outbox was trimmed to nothing.
        assert wait_for(lambda: _outbox_state(settings) == ([], [0] * len(CAMPAIGNS)), 60), (
            _outbox_state(settings),
            notifiers[0].log(),
        )
        # A notification after settling is delivered too (its campaign is due again), and the
        # campaign settles again.
        late = _append_one(settings, CAMPAIGNS[0])
        assert wait_for(
            lambda: all(
                any(r["headers"]["webhook-id"] == late for r in receiver.accepted())
                for receiver in receivers
            ),
            60,
        )
        assert wait_for(lambda: _outbox_state(settings) == ([], [0] * len(CAMPAIGNS)), 60)
    finally:
        writer.stop()  # again when an assertion stopped the test early: a no-op otherwise
        for notifier in notifiers:
            notifier.stop()
        for receiver in receivers:
            receiver.stop()
    requests = Counter(
        (r["path"], r["headers"]["webhook-id"])
        for receiver in receivers
        for r in receiver.requests()
    )
    repeats = {pair: count for pair, count in requests.items() if count > 1}
    assert not repeats, f"{len(repeats)} deliveries repeated, e.g. {list(repeats.items())[:3]}"
    for n, subscription in enumerate(subscriptions):
        receiver = receivers[n % 2]
        mine = [r for r in receiver.accepted() if r["path"].endswith(f"/{n}")]
        check_deliveries(mine, writer.written, subscription.secret)
