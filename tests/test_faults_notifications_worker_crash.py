"""A worker killed with SIGKILL between counting a crossing and its delivery, again and again,
while a real notifier delivers to a real receiver (docs/notifications.md, delivery at least
once).

Four campaigns are dialled to the end while abandoned calls cross the warning level and the
3 % limit and fall back (the phases of tests/test_end_to_end_notifications.py, for each
campaign at once). Each phase that notifies is published, and as soon as the counting script
has written its first crossing to an outbox (the notified hash's sequence moved) the worker is
killed with ``kill -9`` at once or after a random delay up to half a second (seeded, printed;
``ISALES_FAULT_SEED`` replays): before, during or after its announcement to the due set and its
delivery, before its offsets are committed; a new worker replays what the dead one had not
committed.

What is exact despite the kills: a kill changes how the stream is cut into counting calls,
and the notifications depend on the cut; but each phase crosses at most one boundary per
window and finishes a campaign at most once (tests/support/notification_phases.py), so any
cut of it, replay included, notifies what NotificationModel predicts for the phase counted as
one call. The receiver must get every predicted notification, signed, in order per campaign,
and nothing else; a repeated delivery carries its first's id. The counts are the reference
model's, the consumer group commits every partition to its log end, and nothing is left to
replay.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from isales_stats.core.days import today_in
from isales_stats.core.decisions import AbandonLimit
from isales_stats.core.keys import KeyLayout
from isales_stats.core.notification_kinds import NOTIFIED_FIELDS
from isales_stats.core.reference_model import NotificationModel, ReferenceModel
from isales_stats.core.settings import Settings
from isales_stats.engine.context import CountingContext
from isales_stats.engine.redis_connection import connect
from isales_stats.engine.statistics import StatisticsReader
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.publisher import EventPublisher
from tests.support.clock import now_ms
from tests.support.faults import assert_replay_over, fault_seed, figures
from tests.support.notification_phases import (
    calls,
    first_deliveries,
    imports,
    noon_zone,
    repeats_keep_their_id,
    without_timestamps,
)
from tests.support.notifications import check_deliveries, notifier_settings, subscribe
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import Receiver

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.faults]

VDN = 41
CAMPAIGNS = ("c-east", "c-west", "c-north", "c-south")
RECORDS = [f"r{i}" for i in range(20)]
MAX_KILL_DELAY_SECONDS = 0.5


def phase_events(campaign: str, phase: int) -> list[dict[str, Any]]:
    """Live calls after each phase: 100 connected (ok); 3 abandoned, 3/103 = 2.91 % (warning
    from 2.4 %); 1 more, 4/104 = 3.85 % (over); every record's final call, 4/124 = 3.23 %
    (still over), the campaign finished, its imports sent again (duplicates); 9 connected,
    4/133 = 3.01 % (over); 1 more and the abandoned calls again, 4/134 = 2.99 % (warning)."""
    return [
        lambda: imports(VDN, campaign, RECORDS) + calls(VDN, campaign, RECORDS, 0, 100),
        lambda: calls(VDN, campaign, RECORDS, 0, 3, abandoned=True),
        lambda: calls(VDN, campaign, RECORDS, 3, 1, abandoned=True),
        lambda: (
            calls(VDN, campaign, RECORDS, 100, 20, final=True) + imports(VDN, campaign, RECORDS)
        ),
        lambda: calls(VDN, campaign, RECORDS, 120, 9),
        lambda: (
            calls(VDN, campaign, RECORDS, 129, 1)
            + calls(VDN, campaign, RECORDS, 0, 4, abandoned=True)
        ),
    ][phase]()


PHASES = 6
NOTIFYING_PHASES = (1, 2, 3, 5)  # those that cross something: a kill follows each


def read_counts(settings: Settings, day: Any) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        async with connect(settings) as redis:
            reader = StatisticsReader(redis, CountingContext.from_settings(settings))
            return await reader.read_count_detail(VDN, day)

    return asyncio.run(read())


def test_kill_nines_between_counting_and_delivery_lose_and_invent_no_notification(
    test_settings: Settings, tmp_path: Path
) -> None:
    began = time.monotonic()
    seed = fault_seed("notifications: worker crash")
    rng = random.Random(seed)
    settings = notifier_settings(test_settings).model_copy(
        update={"vdn_time_zones": {VDN: noon_zone()}}
    )
    layout = KeyLayout(settings.key_prefix)
    limit = AbandonLimit(settings.abandon_limit_of(VDN), settings.abandon_warning_fraction)
    model = NotificationModel(
        ReferenceModel(settings.time_zone_of, settings.abandon_fail_code_set), lambda _: limit
    )
    ensure_topics(settings)
    receiver = Receiver(settings, tmp_path, "integrator").start()
    subscription = subscribe(settings, receiver.url, (VDN,))
    redis = Redis.from_url(settings.redis_url)

    def sequences() -> int:
        return notifications_written(redis, layout)

    def counted() -> bool:
        return campaigns_counted(redis, layout, model)

    kills: list[str] = []
    workers: list[ServiceProcess] = []

    def start_worker() -> ServiceProcess:
        worker = ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0)
        workers.append(worker.start())
        return worker

    def logs() -> str:
        return "\n".join(worker.log() for worker in workers[-2:])

    try:
        worker = start_worker()
        with (
            EventPublisher(settings) as publisher,
            ServiceProcess(
                settings, "notifier", "--loglevel", "info", log_dir=tmp_path
            ) as notifier,
        ):
            for phase in range(PHASES):
                written_before = sequences()
                events = interleave([e for c in CAMPAIGNS for e in phase_events(c, phase)])
                for event in events:
                    publisher.publish(event)
                publisher.flush()
                model.count(events, now_ms())
                if phase in NOTIFYING_PHASES:
                    assert wait_for(lambda: sequences() > written_before, 120, 0.01), (  # noqa: B023
                        f"phase {phase} notified nothing:\n{logs()}"
                    )
                    # at once (often before the notifier has delivered it), or at a random
                    # point later (delivered, its offsets not yet committed)
                    delay = rng.choice((0.0, rng.uniform(0, MAX_KILL_DELAY_SECONDS)))
                    time.sleep(delay)
                    worker.kill()
                    kills.append(
                        f"phase {phase + 1}, {delay:.2f} s after its first crossing was "
                        f"written: {sequences() - written_before} written by then, "
                        f"{len(receiver.accepted())} deliveries accepted"
                    )
                    print(f"[notifications] kill -9 {len(kills)}: {kills[-1]}", flush=True)
                    worker = start_worker()
                assert wait_for(counted, 120), f"phase {phase + 1} not counted:\n{logs()}"
            predicted = {c: model.outbox(VDN, c) for c in CAMPAIGNS}
            expected_ids = {e["id"] for c in CAMPAIGNS for e in predicted[c]}

            def delivered() -> bool:
                return {r["headers"]["webhook-id"] for r in receiver.accepted()} >= expected_ids

            assert wait_for(delivered, 120), f"not delivered:\n{notifier.log()}"
            to_delivered = time.monotonic() - began
            day = today_in(settings.time_zone_of(VDN))
            expected_counts = model.model.count_detail(VDN, day)
            assert read_counts(settings, day) == expected_counts, "the counts are not exact"
            committed = assert_replay_over(settings, logs)
            assert read_counts(settings, day) == expected_counts, "a replay changed the counts"
            assert sequences() == len(expected_ids), "a replay wrote a notification again"
            worker.stop()
        accepted = receiver.accepted()
        check_received(accepted, predicted, subscription.secret)
    finally:
        for process in workers:
            process.stop()
        receiver.stop()
        redis.close()
    figures(
        "notifications: worker crash (kill -9 after a crossing)",
        {
            "seed": seed,
            "campaigns": f"{len(CAMPAIGNS)}, {len(expected_ids)} notifications predicted",
            **{f"kill {n}": text for n, text in enumerate(kills, start=1)},
            "deliveries": f"{len(accepted)} accepted, "
            f"{len(accepted) - len(expected_ids)} repeated (same id)",
            "all delivered": f"{to_delivered:.0f} s after the start",
            "result": "every notification predicted, in order, signed, no other; counts exact",
            "committed": committed,
            "duration": f"{time.monotonic() - began:.0f} s",
        },
    )


def notifications_written(redis: Redis, layout: KeyLayout) -> int:
    """Notifications written so far, over the campaigns (their notified hashes' sequences)."""
    field = NOTIFIED_FIELDS["sequence"]
    values = [redis.hget(layout.campaign_notified(VDN, c), field) for c in CAMPAIGNS]
    return sum(int(value) for value in values if value is not None)


def campaigns_counted(redis: Redis, layout: KeyLayout, model: NotificationModel) -> bool:
    """Every campaign's records and calls as the model has them so far."""
    for campaign in CAMPAIGNS:
        totals = model.model.campaign_totals(VDN, campaign)
        stored = redis.hmget(
            layout.campaign_totals(VDN, campaign), ["totalCount", "totalCalledCount"]
        )
        expected = [totals["totalCount"], totals["totalCalledCount"]]
        if [int(v) if v is not None else None for v in stored] != expected:
            return False
    return True


def check_received(
    accepted: list[dict[str, Any]], predicted: dict[str, list[dict[str, Any]]], secret: str
) -> None:
    """Exactly the predicted notifications, each campaign's in order (as first delivered),
    signed; a repeated delivery under its first's id."""
    received = first_deliveries(accepted)
    assert set(received) == set(CAMPAIGNS)
    for campaign in CAMPAIGNS:
        assert without_timestamps(received[campaign]) == without_timestamps(predicted[campaign]), (
            campaign
        )
        assert [e["type"] for e in predicted[campaign]] == [
            *["abandon.warning"] * 3,
            *["abandon.over"] * 3,
            "campaign.finished",
            *["abandon.warning"] * 3,
        ]
    assert not repeats_keep_their_id(accepted), "a notification was written twice"
    check_deliveries(accepted, [(c, e["id"]) for c in CAMPAIGNS for e in predicted[c]], secret)


def interleave(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The campaigns' events in turns (round robin), each campaign's in its own order."""
    queues: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        queues.setdefault(event["campaignId"], []).append(event)
    mixed: list[dict[str, Any]] = []
    while any(queues.values()):
        for queue in queues.values():
            if queue:
                mixed.append(queue.pop(0))
    return mixed
