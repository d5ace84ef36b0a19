"""Notifications end to end: kafka-python -> Kafka -> a real worker -> the campaign's outbox
-> a real notifier process -> a real HTTP receiver process.

A campaign's records are dialled to the end while abandoned calls cross the warning level and
then the 3 % limit, and later fall back under it. The stream is published in phases, each
counted before the next is sent: within a phase the statuses only move one way, so however
the worker cuts a phase into counting calls, the outbox holds the same notifications, those
the reference model (NotificationModel) predicts when it counts each phase as one call. The
outbox must hold exactly those, in order, with their ids and data, no more; the campaign is in
the due set. A phase is also published twice: duplicates notify nothing. The receiver gets
each of them, signed (verified with standardwebhooks), in order, with the outbox's ids.

The VDN's zone is chosen so that its local time is about noon: no phase straddles its
midnight, so today's window holds what the rolling ones hold.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis import Redis

from isales_stats.core.decisions import AbandonLimit
from isales_stats.core.keys import KeyLayout
from isales_stats.core.notification_kinds import OUTBOX_FIELDS
from isales_stats.core.reference_model import NotificationModel, ReferenceModel
from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.publisher import EventPublisher
from tests.support.clock import now_ms
from tests.support.events import ADDED, CALL, call_event
from tests.support.notifications import check_deliveries, notifier_settings, subscribe
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.stack

VDN, CAMPAIGN = 9, "C-notify"
RECORDS = [f"r{i}" for i in range(20)]


def noon_zone() -> str:
    """A fixed-offset zone in which it is now between 11:00 and 13:00 (Etc/GMT-N is UTC+N)."""
    offset = (12 - datetime.now(UTC).hour) % 24
    if offset > 14:
        offset -= 24
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"


def connected(first: int, count: int, *, final: bool = False) -> list[dict[str, Any]]:
    return [
        call_event(
            CALL,
            vdnId=VDN,
            campaignId=CAMPAIGN,
            dataId=RECORDS[i % len(RECORDS)],
            callId=f"c{i}",
            final=final,
            occurredAt=now_ms(),
        )
        for i in range(first, first + count)
    ]


def abandoned(first: int, count: int) -> list[dict[str, Any]]:
    return [
        call_event(
            CALL,
            vdnId=VDN,
            campaignId=CAMPAIGN,
            dataId=RECORDS[i % len(RECORDS)],
            callId=f"a{i}",
            callStatus=5,
            failCode="00702",
            final=False,
            occurredAt=now_ms(),
        )
        for i in range(first, first + count)
    ]


def outbox(redis: Redis, layout: KeyLayout) -> list[dict[str, Any]]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = redis.xrange(  # type: ignore[assignment]
        layout.campaign_outbox(VDN, CAMPAIGN)
    )
    found = []
    for _, fields in entries:
        entry: dict[str, Any] = {name: fields[name.encode()].decode() for name in OUTBOX_FIELDS}
        entry["data"] = orjson.loads(entry["data"])
        found.append(entry)
    return found


def test_the_outbox_of_a_counted_stream_holds_what_the_model_predicts(
    test_settings: Settings, tmp_path: Path
) -> None:
    settings = notifier_settings(test_settings).model_copy(
        update={"vdn_time_zones": {VDN: noon_zone()}}
    )
    layout = KeyLayout(settings.key_prefix)
    limit = AbandonLimit(settings.abandon_limit_of(VDN), settings.abandon_warning_fraction)
    model = NotificationModel(
        ReferenceModel(settings.time_zone_of, settings.abandon_fail_code_set), lambda _: limit
    )
    imports = [
        call_event(ADDED, vdnId=VDN, campaignId=CAMPAIGN, dataId=record, occurredAt=now_ms())
        for record in RECORDS
    ]
    # live calls after each phase: 100 connected (ok); 3 abandoned, 3/103 = 2.91 % (warning
    # from 2.4 % on); 1 more, 4/104 = 3.85 % (over); every record's final call, 4/124 = 3.23 %
    # (still over), the campaign finished; 9 connected, 4/133 = 3.01 % (over); 1 more,
    # 4/134 = 2.99 % (warning).
    phases = [
        imports + connected(0, 100),
        abandoned(0, 3),
        abandoned(3, 1),
        connected(100, 20, final=True) + imports,
        connected(120, 9),
        connected(129, 1) + abandoned(0, 4),
    ]
    ensure_topics(settings)
    receiver = Receiver(settings, tmp_path, "integrator").start()
    subscription = subscribe(settings, receiver.url, (VDN,))
    redis = Redis.from_url(settings.redis_url)
    try:
        with (
            EventPublisher(settings) as publisher,
            ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as worker,
            ServiceProcess(
                settings, "notifier", "--loglevel", "info", log_dir=tmp_path
            ) as notifier,
        ):
            for phase in phases:
                for event in phase:
                    publisher.publish(event)
                publisher.flush()
                model.count(phase, now_ms())
                expected_calls = model.model.campaign_totals(VDN, CAMPAIGN)["totalCalledCount"]

                def counted(calls: int = expected_calls) -> bool:
                    value = redis.hget(layout.campaign_totals(VDN, CAMPAIGN), "totalCalledCount")
                    return value is not None and int(value) == calls

                assert wait_for(counted, 90), f"not counted in time:\n{worker.log()}"
            predicted = model.outbox(VDN, CAMPAIGN)
            expected_ids = {entry["id"] for entry in predicted}

            def delivered() -> bool:
                return {r["headers"]["webhook-id"] for r in receiver.accepted()} >= expected_ids

            assert wait_for(delivered, 90), f"not delivered in time:\n{notifier.log()}"
            # What was decided, read from what was delivered (the outbox is trimmed once
            # delivered): each id once, a repeated delivery carrying the same id.
            first_of: dict[str, dict[str, Any]] = {}
            for request in receiver.accepted():
                body = orjson.loads(request["body"])
                first_of.setdefault(request["headers"]["webhook-id"], body)
            written = [{"id": id_, **body} for id_, body in first_of.items()]
        # the same notifications, in order, with their ids and data; the time each was
        # decided is the worker's, of the format the contract gives
        assert [{**e, "timestamp": ""} for e in written] == [
            {**e, "timestamp": ""} for e in predicted
        ]
        for entry in written:
            assert datetime.strptime(entry["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert [e["type"] for e in written] == [
            *["abandon.warning"] * 3,
            *["abandon.over"] * 3,
            "campaign.finished",
            *["abandon.warning"] * 3,
        ]
        check_deliveries(
            receiver.accepted(), [(CAMPAIGN, entry["id"]) for entry in predicted],
            subscription.secret,
        )  # fmt: skip
    finally:
        receiver.stop()
        redis.close()
