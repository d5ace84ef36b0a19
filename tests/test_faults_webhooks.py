"""Webhooks delivered through trouble: a hostile receiver beside a healthy one, and a notifier
killed with ``kill -9`` in the middle of a delivery (docs/reliability.md, "Notifications").

The notifiers are real processes (``isales-stats notifier``), the receivers real HTTP servers
in their own processes (tests/support/webhook_receiver.py), Redis the local stack's. Backoffs
and timeouts are shrunk (tests/support/notifications.py) so that minutes of trouble fit.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from isales_stats.core.settings import Settings
from tests.support.faults import figures
from tests.support.notifications import (
    OutboxWriter,
    check_deliveries,
    latencies,
    notifier_settings,
    percentile,
    subscribe,
    wait_seconds,
)
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import Receiver

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.faults]

VDN = 7
CAMPAIGNS = ("c-east", "c-west", "c-north", "c-south")


def test_a_hostile_receiver_gets_everything_in_order_and_delays_no_other(
    test_settings: Settings, tmp_path: Path
) -> None:
    settings = notifier_settings(test_settings)
    healthy = Receiver(settings, tmp_path, "healthy").start()
    hostile = Receiver(settings, tmp_path, "hostile").start()
    healthy_subscription = subscribe(settings, healthy.url, (VDN,))
    hostile_subscription = subscribe(settings, hostile.url, (VDN,))
    hostile.behave("fail")  # its first attempts fail, then a minute of 500s
    notifiers = [
        ServiceProcess(settings, "notifier", "--loglevel", "info", log_dir=tmp_path).start()
        for _ in range(2)
    ]
    writer = OutboxWriter(settings, VDN, CAMPAIGNS, per_second=10).start()
    try:
        wait_seconds(60)  # 500 for a minute
        hostile.behave("hang 5")  # answers after the notifier's 1 s timeout
        wait_seconds(15)
        hostile.stop()  # gone: connections refused
        wait_seconds(15)
        written_while_hostile = list(writer.written)
        # The healthy receiver had everything while the other was failing, hanging or gone.
        assert wait_for(
            lambda: (
                {r["headers"]["webhook-id"] for r in healthy.accepted()}
                >= {notification_id for _, notification_id in written_while_hostile}
            ),
            30,
        ), "the healthy receiver was held up by the hostile one"
        hostile.behave("ok")
        hostile.start()  # back, on the same address
        wait_seconds(5)
    finally:
        writer.stop()
    try:
        everything = {notification_id for _, notification_id in writer.written}
        for receiver in (healthy, hostile):
            assert wait_for(functools.partial(_has_all, receiver, everything), 120), (
                receiver.name,
                notifiers[0].log(),
                notifiers[1].log(),
            )
    finally:
        for notifier in notifiers:
            notifier.stop()
        hostile.stop()
        healthy.stop()
    check_deliveries(healthy.accepted(), writer.written, healthy_subscription.secret)
    check_deliveries(hostile.accepted(), writer.written, hostile_subscription.secret)
    healthy_lag = latencies(healthy.accepted())
    hostile_requests = hostile.requests()
    figures(
        "webhooks: hostile receiver beside a healthy one",
        {
            "notifications": len(writer.written),
            "healthy p50 latency (s)": round(percentile(healthy_lag, 0.5), 3),
            "healthy p99 latency (s)": round(percentile(healthy_lag, 0.99), 3),
            "healthy max latency (s)": round(healthy_lag[-1], 3),
            "healthy requests": len(healthy.requests()),
            "hostile requests": len(hostile_requests),
            "hostile 500s": sum(1 for r in hostile_requests if r["answered"] == "fail"),
            "hostile hung": sum(1 for r in hostile_requests if r["answered"] == "hang"),
            "hostile accepted": len(hostile.accepted()),
        },
    )


def test_a_notifier_killed_mid_delivery_loses_nothing(
    test_settings: Settings, tmp_path: Path
) -> None:
    settings = notifier_settings(test_settings, webhook_timeout_seconds=30.0)
    receiver = Receiver(settings, tmp_path, "holding").start()
    subscription = subscribe(settings, receiver.url, (VDN,))
    receiver.behave("hang 60")  # holds the first request open
    first = ServiceProcess(settings, "notifier", "--loglevel", "info", log_dir=tmp_path).start()
    writer = OutboxWriter(settings, VDN, CAMPAIGNS[:2], per_second=5).start()
    second: ServiceProcess | None = None
    try:
        held = wait_for(lambda: any(r["answered"] == "hang" for r in receiver.requests()), 30)
        assert held, first.log()
        first.kill()  # mid-delivery: the request is still open
        receiver.stop()  # the held request dies with its connection
        receiver.behave("ok")
        receiver.start()
        second = ServiceProcess(
            settings, "notifier", "--loglevel", "info", log_dir=tmp_path
        ).start()
        wait_seconds(3)
        writer.stop()
        everything = {notification_id for _, notification_id in writer.written}
        assert wait_for(
            lambda: {r["headers"]["webhook-id"] for r in receiver.accepted()} >= everything, 60
        ), second.log()
    finally:
        if second is not None:
            second.stop()
        receiver.stop()
    accepted = receiver.accepted()
    check_deliveries(accepted, writer.written, subscription.secret)
    # The request held when the notifier died was sent again by the second, with its id.
    held_ids = {r["headers"]["webhook-id"] for r in receiver.requests() if r["answered"] != "ok"}
    assert held_ids, "no request was held"
    assert held_ids <= {r["headers"]["webhook-id"] for r in accepted}
    figures(
        "webhooks: a notifier killed mid-delivery",
        {
            "notifications": len(writer.written),
            "requests": len(receiver.requests()),
            "accepted": len(accepted),
            "held, then sent again with the same id": len(held_ids),
        },
    )


def _has_all(receiver: Receiver, ids: set[str]) -> bool:
    return {r["headers"]["webhook-id"] for r in receiver.accepted()} >= ids
