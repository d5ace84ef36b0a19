"""Notifications across a midnight, end to end: kafka-python -> Kafka -> a real worker -> the
outbox -> a real notifier process -> a real HTTP receiver process, on the real clock.

A campaign's records are dialled to the end while abandoned calls cross the warning level and
the 3 % limit; then midnight comes in the VDN's zone. The workers' sweep (every
NOTIFICATION_SWEEP_SECONDS) finds today's window empty (abandon.ok for today, the rolling
windows still over) and closes the day that ended (day.closed with its daily counters). After
midnight, new records are imported and called: the rolling windows fall to warning, the
campaign finishes again, and one abandoned call puts today's restarted window at warning while
the rolling ones go back over. The receiver gets exactly what NotificationModel predicts
(counting each phase as one call, sweeping once after midnight), signed, in order, no more.

The worker has no clock to inject: the VDN's zone is a whole-minute UTC offset whose midnight
is a minute soon. The zone must be in the worker's settings before it starts, and how long it
takes to start is not known, so the worker knows several candidate VDNs, whose midnights fall
on successive minutes; once it counts, the test picks the first whose midnight is at least
MIDNIGHT_MARGIN_SECONDS away, counts the phases before midnight, then waits for the real clock.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from isales_stats.core.decisions import AbandonLimit
from isales_stats.core.keys import KeyLayout
from isales_stats.core.notification_kinds import NOTIFIED_FIELDS
from isales_stats.core.reference_model import NotificationModel, ReferenceModel
from isales_stats.core.settings import Settings, parse_time_zone
from isales_stats.engine.notifications.sweep import NOTIFICATION_SWEEP_SECONDS
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.publisher import EventPublisher
from tests.support.clock import now_ms
from tests.support.notification_phases import (
    calls,
    first_deliveries,
    imports,
    repeats_keep_their_id,
    without_timestamps,
)
from tests.support.notifications import check_deliveries, notifier_settings, subscribe
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import Receiver

# It waits for a real midnight (a minute or two): run with the fault suite (make test-faults),
# which CI runs after make test, so that make test keeps within its time.
pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.faults]

FIRST_VDN, CANDIDATES = 31, 4  # VDNs 31..34, midnights a minute apart
WARM_UP_VDN = 39  # in the default zone, not subscribed: its import says the worker counts
CAMPAIGN = "C-midnight"
RECORDS = [f"r{i}" for i in range(20)]
NEW_RECORDS = [f"n{i}" for i in range(5)]
# Left between choosing a midnight and reaching it, for the phases before it to be counted.
MIDNIGHT_MARGIN_SECONDS = 30


def zone_with_midnight_at(epoch_seconds: int) -> str:
    """A whole-minute UTC offset ("+05:37") in which ``epoch_seconds`` (a whole UTC minute)
    is 00:00."""
    minutes = (-(epoch_seconds // 60)) % (24 * 60)
    if minutes >= 12 * 60:
        minutes -= 24 * 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}"


def candidate_midnights(now: float) -> dict[int, int]:
    """VDN -> the epoch second of its coming midnight: whole minutes, the first at least a
    minute away (the worker starts meanwhile), one a minute after the other."""
    first = (int(now) // 60 + 2) * 60
    return {FIRST_VDN + n: first + 60 * n for n in range(CANDIDATES)}


def notified_sequence(redis: Redis, layout: KeyLayout, vdn_id: int) -> int:
    value = redis.hget(layout.campaign_notified(vdn_id, CAMPAIGN), NOTIFIED_FIELDS["sequence"])
    return int(value) if value is not None else 0


def test_a_midnight_in_the_vdns_zone_notifies_what_the_model_predicts(
    test_settings: Settings, tmp_path: Path
) -> None:
    midnights = candidate_midnights(time.time())
    zones = {vdn: zone_with_midnight_at(moment) for vdn, moment in midnights.items()}
    for vdn, moment in midnights.items():  # the offsets say what they should
        assert datetime.fromtimestamp(moment, parse_time_zone(zones[vdn])).time().hour == 0
    settings = notifier_settings(test_settings).model_copy(update={"vdn_time_zones": zones})
    layout = KeyLayout(settings.key_prefix)
    ensure_topics(settings)
    receiver = Receiver(settings, tmp_path, "integrator").start()
    subscription = subscribe(settings, receiver.url, tuple(midnights))
    redis = Redis.from_url(settings.redis_url)
    try:
        with (
            EventPublisher(settings) as publisher,
            ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as worker,
            ServiceProcess(
                settings, "notifier", "--loglevel", "info", log_dir=tmp_path
            ) as notifier,
        ):
            for event in imports(WARM_UP_VDN, "C-warm-up", ["w1"]):
                publisher.publish(event)
            publisher.flush()
            assert wait_for(
                lambda: redis.exists(layout.campaign_totals(WARM_UP_VDN, "C-warm-up")), 90
            ), f"the worker counted nothing:\n{worker.log()}"

            ready = time.time()
            vdn = min(v for v, m in midnights.items() if m - ready >= MIDNIGHT_MARGIN_SECONDS)
            midnight = midnights[vdn]
            zone = parse_time_zone(zones[vdn])
            day_before = datetime.fromtimestamp(midnight - 1, zone).date()
            limit = AbandonLimit(settings.abandon_limit_of(vdn), settings.abandon_warning_fraction)
            model = NotificationModel(
                ReferenceModel(settings.time_zone_of, settings.abandon_fail_code_set),
                lambda _: limit,
            )

            def count_phase(phase: list[dict[str, Any]]) -> None:
                for event in phase:
                    publisher.publish(event)
                publisher.flush()
                model.count(phase, now_ms())
                totals = model.model.campaign_totals(vdn, CAMPAIGN)

                def counted() -> bool:
                    stored = redis.hmget(
                        layout.campaign_totals(vdn, CAMPAIGN), ["totalCount", "totalCalledCount"]
                    )
                    return [int(v) if v is not None else None for v in stored] == [
                        totals["totalCount"],
                        totals["totalCalledCount"],
                    ]

                assert wait_for(counted, 90), f"not counted in time:\n{worker.log()}"

            def delivered() -> bool:
                ids = {r["headers"]["webhook-id"] for r in receiver.accepted()}
                return ids >= {e["id"] for e in model.outbox(vdn, CAMPAIGN)}

            # Before midnight. Live calls after each phase: 100 connected (ok); 3 abandoned,
            # 3/103 = 2.91 % (warning from 2.4 %); 1 more, 4/104 = 3.85 % (over); every
            # record's final call, 4/124 = 3.23 % (still over), the campaign finished.
            for phase in (
                imports(vdn, CAMPAIGN, RECORDS) + calls(vdn, CAMPAIGN, RECORDS, 0, 100),
                calls(vdn, CAMPAIGN, RECORDS, 0, 3, abandoned=True),
                calls(vdn, CAMPAIGN, RECORDS, 3, 1, abandoned=True),
                calls(vdn, CAMPAIGN, RECORDS, 100, 20, final=True),
            ):
                count_phase(phase)
            left = midnight - time.time()
            assert left > 2, f"the phases before midnight were counted {-left:.1f} s after it"
            assert wait_for(delivered, 90), f"not delivered in time:\n{notifier.log()}"

            # Midnight, then the workers' next sweep: today's window restarts empty (ok), the
            # day before is closed with its daily counters.
            assert wait_for(lambda: time.time() > midnight, midnight - time.time() + 30)
            model.sweep(vdn, CAMPAIGN, midnight * 1000)
            model.close_days(vdn, CAMPAIGN, midnight * 1000)
            assert wait_for(delivered, NOTIFICATION_SWEEP_SECONDS + 90), (
                f"midnight's notifications not delivered:\n{worker.log()}\n{notifier.log()}"
            )

            # After midnight: 5 records imported (the campaign has records left again); 30
            # connected calls on them, 4/154 = 2.60 % over 24 h and 30 d (warning), today 0/30;
            # their final calls, 4/159 = 2.52 %, the campaign finished again; 1 abandoned call,
            # today 1/36 = 2.78 % (warning), 24 h and 30 d 5/160 = 3.13 % (over).
            for phase in (
                imports(vdn, CAMPAIGN, NEW_RECORDS),
                calls(vdn, CAMPAIGN, NEW_RECORDS, 200, 30),
                calls(vdn, CAMPAIGN, NEW_RECORDS, 230, 5, final=True),
                calls(vdn, CAMPAIGN, NEW_RECORDS, 4, 1, abandoned=True),
            ):
                count_phase(phase)
            assert wait_for(delivered, 90), f"not delivered in time:\n{notifier.log()}"
            predicted = model.outbox(vdn, CAMPAIGN)
            # No more: a sweep after the last phase decides nothing new.
            swept_after = time.time() + NOTIFICATION_SWEEP_SECONDS + 2
            wait_for(lambda: time.time() > swept_after, NOTIFICATION_SWEEP_SECONDS + 5)
            assert notified_sequence(redis, layout, vdn) == len(predicted), worker.log()
        accepted = receiver.accepted()
        received = first_deliveries(accepted)
        assert set(received) == {CAMPAIGN}, set(received)
        assert without_timestamps(received[CAMPAIGN]) == without_timestamps(predicted)
        assert [(e["type"], e["data"].get("window")) for e in predicted] == [
            *[("abandon.warning", w) for w in ("today", "rolling24h", "rolling30d")],
            *[("abandon.over", w) for w in ("today", "rolling24h", "rolling30d")],
            ("campaign.finished", None),
            ("abandon.ok", "today"),
            ("day.closed", None),
            ("abandon.warning", "rolling24h"),
            ("abandon.warning", "rolling30d"),
            ("campaign.finished", None),
            ("abandon.warning", "today"),
            ("abandon.over", "rolling24h"),
            ("abandon.over", "rolling30d"),
        ]
        closed = predicted[8]["data"]
        assert closed["day"] == day_before.isoformat()
        assert (closed["dailyCalledCount"], closed["dailyCount"]) == (124, 20)
        # decided on the real clock: before midnight, then after it
        decided = [
            datetime.strptime(e["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            for e in received[CAMPAIGN]
        ]
        assert all(moment.timestamp() < midnight for moment in decided[:7])
        assert all(moment.timestamp() >= midnight for moment in decided[7:])
        assert not repeats_keep_their_id(accepted)
        check_deliveries(accepted, [(CAMPAIGN, e["id"]) for e in predicted], subscription.secret)
    finally:
        receiver.stop()
        redis.close()


def test_a_zone_with_midnight_at_a_given_minute() -> None:
    moment = int(datetime(2026, 5, 1, 18, 23, tzinfo=UTC).timestamp())
    zone = zone_with_midnight_at(moment)
    assert zone == "+05:37"
    local = datetime.fromtimestamp(moment, parse_time_zone(zone))
    assert (local.date(), local.time().hour, local.time().minute) == (date(2026, 5, 2), 0, 0)
    assert zone_with_midnight_at(moment + 8 * 3600) == "-02:23"
    assert parse_time_zone("-02:23") == timezone(-timedelta(hours=2, minutes=23))
