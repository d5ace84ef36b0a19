"""Campaigns that end give their memory back (engine/lifecycle.py, campaign_lifecycle.lua).

Against the real Redis, with an injected clock: a campaign closed or gone idle keeps counting
through its grace, then loses its idempotence state in one step (records, callIds, day records:
measured, by key and by MEMORY USAGE) while its counters stay exactly what they were; after the
retention its counters go too and it leaves the VDN's index; a late event is refused, never
counted twice. The whole path through a worker, the dead-letter topic and the operator's
deletion while a worker counts are at the end.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from isales_stats.core.days import DAY_SECONDS, today_in
from isales_stats.core.events import CallEvent, decode_event
from isales_stats.core.keys import TOTAL_COUNTERS, KeyLayout
from isales_stats.core.reference_model import reference_statistics
from isales_stats.core.settings import Settings
from isales_stats.engine.counting import EventCounter
from isales_stats.engine.history import HistoryReader
from isales_stats.engine.lifecycle import CampaignLifecycle, LifecyclePolicy
from isales_stats.engine.state import state_sizes
from isales_stats.engine.statistics import StatisticsReader
from tests.support.clock import GMT8, SettableClock
from tests.support.counting import EventCounters, count_events
from tests.support.detail import expected_detail, read_detail
from tests.support.events import CALL, call_event
from tests.support.kafka_topics import (
    end_offsets,
    publish,
    read_dead_letters,
    wait_until_committed,
)
from tests.support.private_redis import private_redis
from tests.support.processes import ServiceProcess, run_cli
from tests.support.state import state_sizes as sync_state_sizes
from tests.support.streams import campaign_events
from tests.support.waiting import wait_for

pytestmark = pytest.mark.stack

HOUR = 3600
POLICY = LifecyclePolicy(
    idle_seconds=3 * DAY_SECONDS,
    grace_seconds=HOUR,
    retention_seconds=2 * DAY_SECONDS,
    tombstone_seconds=30 * DAY_SECONDS,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def decoded(stream: list[dict[str, Any]]) -> list[CallEvent]:
    return [decode_event(orjson.dumps(event)) for event in stream]


def closed(campaign_id: str, moment_ms: int) -> dict[str, Any]:
    return {"eventType": "campaign.closed", "vdnId": 1, "campaignId": campaign_id,
            "occurredAt": moment_ms}  # fmt: skip


class Campaigns:
    """One test's counter, sweeper and reader on one Redis client and one clock."""

    def __init__(self, redis: Redis, settings: Settings, counters: EventCounters) -> None:
        self.clock = SettableClock()
        self.redis = redis
        context = counters.context(key_prefix=settings.key_prefix, clock=self.clock)
        self.context = replace(context, policy=POLICY)
        self.layout = self.context.layout
        self.counter = EventCounter(redis, self.context)
        self.lifecycle = CampaignLifecycle(redis, self.context)
        self.reader = StatisticsReader(redis, self.context)

    @property
    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def detail(self, campaign_id: str | None = None) -> list[dict[str, Any]]:
        """The whole VDN's countDetail (its live campaigns), or one campaign's."""
        return await self.reader.read_count_detail(1, today_in(GMT8, self.clock), campaign_id)

    async def keys_of(self, campaign_id: str) -> dict[str, int]:
        """The campaign's keys -> MEMORY USAGE, in bytes."""
        pattern = self.layout.campaign_base(1, campaign_id).replace("{", "\\{") + "*"
        keys = [key.decode() async for key in self.redis.scan_iter(match=pattern, count=1000)]
        return {key: int(await self.redis.memory_usage(key, samples=0) or 0) for key in keys}


def suffixes(keys: dict[str, int], layout: KeyLayout, campaign_id: str) -> set[str]:
    base = layout.campaign_base(1, campaign_id)
    return {key.removeprefix(base) for key in keys}


@pytest.mark.anyio
async def test_a_closed_campaign_counts_through_its_grace_then_keeps_only_its_counters(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    async with Redis.from_url(test_settings.redis_url) as redis:
        campaigns = Campaigns(redis, test_settings, event_counter)
        c1 = campaign_events(1, "C1", ["b1", "b2", None], 400, moment_ms=campaigns.now_ms)
        c2 = campaign_events(1, "C2", ["b1"], 30, moment_ms=campaigns.now_ms)
        await campaigns.counter.count(decoded(c1 + c2))
        before = await campaigns.keys_of("C1")
        assert (await campaigns.counter.count(decoded([closed("C1", campaigns.now_ms)]))).applied

        # Within the grace a late result is still counted, and the campaign keeps its state.
        campaigns.clock.advance(HOUR - 60)
        late = call_event(CALL, vdnId=1, campaignId="C1", dataId="b1-0", batchId="b1",
                          callId="late-1", callStatus=6, final=True,
                          occurredAt=campaigns.now_ms)  # fmt: skip
        assert (await campaigns.counter.count(decoded([late]))).applied == 1
        steps = (await campaigns.lifecycle.sweep()).steps
        assert [step.state for step in steps] == ["live", "live"]
        expected = expected_detail([*c1, late, *c2])
        assert await campaigns.detail() == expected

        # After it: released in one step. State gone, counters compacted to the rows the API
        # reads and kept exactly, C2 untouched.
        campaigns.clock.advance(120)
        report = await campaigns.lifecycle.sweep()
        assert [(s.campaign_id, s.state) for s in report.steps] == [("C1", "released")]
        after = await campaigns.keys_of("C1")
        layout = campaigns.layout
        day = today_in(GMT8, campaigns.clock).isoformat()
        # What the API reads: the packed rows, each scope's hours and failCodes of the day, and
        # each scope's rolling windows (until the deletion, with the rows).
        day_keys = {f":day:{day}", *(f":batch:{batch}:day:{day}" for batch in ("b1", "b2"))}
        history = {key + detail for key in day_keys for detail in (":hours", ":fails")}
        windows = {":window", ":batch:b1:window", ":batch:b2:window"}
        # Its notifications (campaign.released among them), kept until delivered.
        notifications = {":outbox", ":notified"}
        assert suffixes(after, layout, "C1") == {
            ":rows",
            f":day:{day}:rows",
            ":life",
            *history,
            *windows,
            *notifications,
        }
        entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(  # type: ignore[assignment]
            layout.campaign_outbox(1, "C1")
        )
        (released_entry,) = [f for _, f in entries if f[b"type"] == b"campaign.released"]
        final = reference_statistics([*c1, late, *c2]).campaign_totals(1, "C1")
        assert orjson.loads(released_entry[b"data"]) == {
            "vdnId": 1,
            "campaignId": "C1",
            **{name: final[name] for name in TOTAL_COUNTERS},
        }
        assert await redis.zrange(layout.outbox_due(), 0, -1) == [b"1:C1"]
        state = {":records", ":calls", f":day:{day}:records"}
        released = sum(before[layout.campaign_base(1, "C1") + suffix] for suffix in state)
        assert released > 0.9 * sum(before.values()), before  # nearly all its memory
        # The outbox is not counted: the notifier trims it once delivered.
        counters = {key: size for key, size in after.items() if not key.endswith(":outbox")}
        assert sum(counters.values()) < sum(before.values()) / 30, (before, after)
        c2_calls = len({event["callId"] for event in c2 if event["eventType"] == CALL})
        sizes = await state_sizes(redis, layout, [(1, "C1"), (1, "C2")])
        assert sizes == [(0, 0), (30, c2_calls)]  # C2 untouched
        # Its final counters are read by campaignId; the whole VDN walks the live campaigns.
        final_c1 = [entry for entry in expected if entry["campaignId"] == "C1"]
        assert await campaigns.detail("C1") == final_c1
        model = reference_statistics([*c1, late, *c2])
        today = today_in(GMT8, campaigns.clock)
        history_reader = HistoryReader(redis, campaigns.context)
        (kept,) = await history_reader.days(1, "C1", [today], today, hours=True)
        hours = {hour: counters for hour, counters in kept.hours.items() if any(counters.values())}
        assert (kept.daily, hours) == (model.daily(1, "C1", today), model.hourly(1, "C1", today))
        assert await campaigns.detail() == expected_detail(c2)
        assert await redis.smembers(layout.vdn_campaigns(1)) == {b"C2"}
        deleted_at = int(campaigns.clock()) + POLICY.retention_seconds
        released_index = layout.vdn_released_campaigns(1)
        assert await redis.zrange(released_index, 0, -1, withscores=True) == [(b"C1", deleted_at)]

        # A late event now is refused with the reason, and nothing moves.
        refused = await campaigns.counter.count(decoded([late, {**late, "callId": "late-2"}]))
        assert (refused.applied, refused.duplicates, len(refused.released)) == (0, 0, 2)
        assert "released" in refused.released[0][1]
        assert await campaigns.detail("C1") == final_c1
        # Not even by a process that never listed it: the live index stays as it was.
        fresh = event_counter(redis, clock=campaigns.clock)
        assert len((await fresh.count(decoded([late]))).released) == 1
        assert await campaigns.detail() == expected_detail(c2)
        assert await redis.smembers(layout.vdn_campaigns(1)) == {b"C2"}


@pytest.mark.anyio
async def test_an_idle_campaign_is_released_after_its_idle_days_and_deleted_after_retention(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    async with Redis.from_url(test_settings.redis_url) as redis:
        campaigns = Campaigns(redis, test_settings, event_counter)
        stream = campaign_events(1, "C1", ["b1", "b2"], 30, moment_ms=campaigns.now_ms)
        counted_at = campaigns.clock()
        await campaigns.counter.count(decoded(stream))
        expected = expected_detail(stream)
        layout = campaigns.layout
        index, released_index = layout.vdn_campaigns(1), layout.vdn_released_campaigns(1)

        # Idle: no event for three days after its last active day, plus the grace.
        idle_end = (int(campaigns.clock() // DAY_SECONDS) + 1) * DAY_SECONDS + 3 * DAY_SECONDS
        campaigns.clock.now = idle_end + HOUR - 1
        assert [s.state for s in (await campaigns.lifecycle.sweep()).steps] == ["live"]
        campaigns.clock.now = idle_end + HOUR
        assert [s.state for s in (await campaigns.lifecycle.sweep()).steps] == ["released"]
        # The dates are those of the day the events were counted: read them at that moment.
        campaigns.clock.now = counted_at
        assert await campaigns.detail("C1") == expected
        assert await campaigns.detail() == []  # the whole VDN reads its live campaigns
        assert not await redis.sismember(index, "C1")
        assert await redis.zscore(released_index, "C1") == idle_end + HOUR + 2 * DAY_SECONDS

        # Retention over: counters gone, off the index and the schedule; a tombstone is left.
        campaigns.clock.now = idle_end + HOUR + 2 * DAY_SECONDS
        assert [s.state for s in (await campaigns.lifecycle.sweep()).steps] == ["deleted"]
        assert suffixes(await campaigns.keys_of("C1"), layout, "C1") == {":life"}
        assert not await redis.sismember(index, "C1")
        assert not await redis.exists(released_index)
        assert await redis.zcard(layout.lifecycle_schedule()) == 0
        tombstone_expiry = await redis.expiretime(layout.campaign_life(1, "C1"))
        assert tombstone_expiry == int(campaigns.clock()) + 30 * DAY_SECONDS
        assert await campaigns.detail("C1") == []

        # A late event of a deleted campaign, counted by a process that never listed it: refused,
        # and the campaign is not listed again.
        fresh = event_counter(redis, clock=campaigns.clock)
        refused = await fresh.count(decoded(stream[:5]))
        assert (refused.applied, len(refused.released)) == (0, 5)
        assert "deleted" in refused.released[0][1]
        assert not await redis.sismember(index, "C1")
        assert suffixes(await campaigns.keys_of("C1"), layout, "C1") == {":life"}
        # That process put it on the schedule again (it names campaigns, the sweeper judges):
        # the sweep finds it deleted, removes nothing and takes it off. Every step is idempotent.
        again = (await campaigns.lifecycle.sweep()).steps
        assert [(s.state, s.keys_removed) for s in again] == [("deleted", 0)]
        assert await redis.zcard(layout.lifecycle_schedule()) == 0
        assert (await campaigns.lifecycle.delete(1, "C1")).keys_removed == 0

        # A sweeper's late filing of the release, after the deletion's, files it back among
        # the released; listing the VDN takes it off again.
        await redis.zadd(released_index, {"C1": campaigns.clock()})
        assert await campaigns.lifecycle.describe(1) == []
        assert not await redis.exists(released_index)


@pytest.mark.anyio
async def test_a_vdn_with_thousands_of_released_campaigns_reads_only_what_lives(
    test_settings: Settings, event_counter: EventCounters, tmp_path: Path
) -> None:
    """VDN 1 has 50 live campaigns; VDN 2 the same 50 and 5,000 released ones. Their whole-VDN
    reads answer the same 50 campaigns with the same Redis work (keys looked up, measured by
    INFO's keyspace counters), not a hundred times more; the benchmark times both
    (``python -m benchmarks.run lifecycle``). A Redis of its own: the keyspace counters are the
    server's, and no other client may move them."""
    with private_redis(test_settings, tmp_path / "stack") as (settings, _):
        await _read_only_what_lives(settings, event_counter)


async def _read_only_what_lives(settings: Settings, event_counter: EventCounters) -> None:
    async with Redis.from_url(settings.redis_url) as redis:
        campaigns = Campaigns(redis, settings, event_counter)
        live = [f"L{index}" for index in range(50)]
        ended = [f"E{index}" for index in range(5000)]
        events = [
            event
            for vdn_id, names in ((1, live), (2, live + ended))
            for name in names
            for event in campaign_events(vdn_id, name, ["b1"], 2, moment_ms=campaigns.now_ms)
        ]
        events += [{**closed(name, campaigns.now_ms), "vdnId": 2} for name in ended]
        for start in range(0, len(events), 5000):
            await campaigns.counter.count(decoded(events[start : start + 5000]))
        counted_at = campaigns.clock()
        campaigns.clock.advance(POLICY.grace_seconds)
        while (await campaigns.lifecycle.sweep()).steps:
            pass  # a sweep steps at most 5,000 campaigns; the 50 live ones are due too
        layout = campaigns.layout
        assert await redis.scard(layout.vdn_campaigns(2)) == 50
        assert await redis.zcard(layout.vdn_released_campaigns(2)) == 5000

        campaigns.clock.now = counted_at
        work = {}
        for vdn_id in (1, 2):
            before = await redis.info("stats")
            detail = await campaigns.reader.read_count_detail(
                vdn_id, today_in(GMT8, campaigns.clock)
            )
            after = await redis.info("stats")
            assert sorted(entry["campaignId"] for entry in detail) == sorted(live)
            work[vdn_id] = sum(after[n] - before[n] for n in ("keyspace_hits", "keyspace_misses"))
        assert work[1] == work[2] == 1 + 2 * 50, work  # the index, two row hashes a campaign
        # The released ones are still there for whoever names them.
        today = today_in(GMT8, campaigns.clock)
        (final,) = await campaigns.reader.read_count_detail(2, today, "E7")
        assert final["campaignId"] == "E7"
        assert final["totalCount"] == 2


@pytest.mark.anyio
async def test_a_second_close_is_a_duplicate_and_a_close_counts_nothing(
    test_settings: Settings, event_counter: EventCounters
) -> None:
    async with Redis.from_url(test_settings.redis_url) as redis:
        campaigns = Campaigns(redis, test_settings, event_counter)
        stream = campaign_events(1, "C1", ["b1"], 10, moment_ms=campaigns.now_ms)
        end = closed("C1", campaigns.now_ms)
        first = await campaigns.counter.count(decoded([*stream, end]))
        again = await campaigns.counter.count(decoded([end]))
        assert (first.applied, again.applied, again.duplicates) == (len(stream) + 1, 0, 1)
        assert await campaigns.detail() == expected_detail(stream)
        closed_at = await redis.hget(campaigns.layout.campaign_life(1, "C1"), "closed")
        assert closed_at == str(int(campaigns.clock())).encode()


def test_a_late_event_of_a_released_campaign_goes_to_the_dead_letter_topic(
    test_settings: Settings, tmp_path: Path
) -> None:
    """The whole path: a worker that closes, sweeps and releases on its own timer."""
    moment = int(SettableClock()() * 1000)
    c1 = campaign_events(1, "C1", ["b1"], 20, moment_ms=moment)
    c2 = campaign_events(1, "C2", ["b1"], 20, moment_ms=moment)
    publish(test_settings, [*c1, *c2, closed("C1", moment)])
    layout = KeyLayout(test_settings.key_prefix)
    with (
        ServiceProcess(
            test_settings,
            "worker",
            log_dir=tmp_path,
            worker_metrics_port=0,
            campaign_release_grace_hours=0,
            campaign_sweep_seconds=0.5,
        ) as worker,
        SyncRedis.from_url(test_settings.redis_url) as redis,
    ):
        life = layout.campaign_life(1, "C1")
        assert wait_for(lambda: redis.hexists(life, "released"), 30), worker.log()
        assert wait_for(lambda: read_detail(test_settings) == expected_detail(c2), 5)
        assert read_detail(test_settings, "C1") == expected_detail(c1)
        late = call_event(CALL, vdnId=1, campaignId="C1", dataId="b1-0", batchId="b1",
                          callId="after-the-end", callStatus=5, final=False,
                          occurredAt=moment)  # fmt: skip
        publish(test_settings, [late])
        (letter,) = read_dead_letters(test_settings, 1)
        assert wait_until_committed(test_settings) == {}
        assert read_detail(test_settings) == expected_detail(c2)
        assert read_detail(test_settings, "C1") == expected_detail(c1)
        assert sync_state_sizes(redis, layout, [(1, "C1")]) == [(0, 0)]
        assert sync_state_sizes(redis, layout, [(1, "C2")])[0][0] == 20
    headers = dict(letter.headers)
    assert headers["x-dead-letter-category"] == b"campaign-released"
    assert b"released" in headers["x-dead-letter-reason"]
    assert orjson.loads(letter.value) == late


def test_an_operator_deletes_a_campaign_while_a_worker_counts_it(
    test_settings: Settings, tmp_path: Path
) -> None:
    """``isales-stats campaigns delete`` in the middle of a stream: every event of C1 after it
    is dead-lettered, none counted again from nothing; C2 is exact; the group commits all."""
    moment = int(SettableClock()() * 1000)
    c1 = campaign_events(1, "C1", ["b1", "b2"], 400, moment_ms=moment)
    c2 = campaign_events(1, "C2", ["b1", "b2"], 400, moment_ms=moment)
    first, during, after = (
        c1[:200],
        c1[200:],
        campaign_events(1, "C1", ["b3"], 50, moment_ms=moment, seed=3),
    )
    layout = KeyLayout(test_settings.key_prefix)
    with ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as worker:
        publish(test_settings, first)
        assert wait_for(lambda: read_detail(test_settings) == expected_detail(first), 30), (
            worker.log()
        )
        # C1's rest and all of C2 stream in while the operator deletes C1.
        mixed = interleave(during, c2)

        def send() -> None:
            for start in range(0, len(mixed), 40):
                publish(test_settings, mixed[start : start + 40])

        sender = threading.Thread(target=send)
        sender.start()
        deleted = run_cli(test_settings, "campaigns", "delete", "--vdn", "1", "--campaign", "C1")
        sender.join()
        assert deleted.returncode == 0, deleted.stderr
        publish(test_settings, after)
        assert wait_for(lambda: read_detail(test_settings) == expected_detail(c2), 60), worker.log()
        assert wait_until_committed(test_settings) == {}
        letters = read_dead_letters(
            test_settings, sum(end_offsets(test_settings, test_settings.dead_letter_topic).values())
        )
        assert read_detail(test_settings) == expected_detail(c2)

    # Every dead letter is C1's, refused as deleted; those sent after the deletion all are.
    values = [orjson.loads(letter.value) for letter in letters]
    assert {value["campaignId"] for value in values} == {"C1"}
    assert all(dict(letter.headers)["x-dead-letter-category"] == b"campaign-released"
               for letter in letters)  # fmt: skip
    assert all(event in values for event in after)
    with SyncRedis.from_url(test_settings.redis_url) as redis:
        left = {key.decode() for key in redis.scan_iter(match=f"{test_settings.key_prefix}:*")}
        assert [key for key in left if "{1:C1}" in key] == [layout.campaign_life(1, "C1")]
        assert redis.smembers(layout.vdn_campaigns(1)) == {b"C2"}
    # The deletion is on record: in the command's output and its log line.
    report = json.loads(deleted.stdout)
    assert (report["vdnId"], report["campaignId"], report["state"]) == (1, "C1", "deleted")
    assert report["keysRemoved"] > 0
    assert "campaign deleted: vdn=1 campaign='C1'" in deleted.stderr


def interleave(a: list[Any], b: list[Any]) -> list[Any]:
    merged = []
    for index in range(max(len(a), len(b))):
        merged += a[index : index + 1] + b[index : index + 1]
    return merged


def test_campaigns_list_shows_each_campaigns_lifecycle(test_settings: Settings) -> None:
    moment = int(SettableClock()() * 1000)
    asyncio.run(count_events(test_settings, [
        *campaign_events(1, "C1", ["b1"], 5, moment_ms=moment),
        *campaign_events(1, "C2", ["b1"], 3, moment_ms=moment),
        closed("C2", moment),
    ]))  # fmt: skip
    listed = run_cli(test_settings, "campaigns", "list", "--vdn", "1", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["campaignId"]: row for row in json.loads(listed.stdout)}
    assert (rows["C1"]["state"], rows["C1"]["records"]) == ("live", 5)
    assert (rows["C2"]["state"], rows["C2"]["records"]) == ("closed", 3)
    table = run_cli(test_settings, "campaigns", "list", "--vdn", "1")
    assert table.stdout.splitlines()[0].split() == [
        "campaign", "state", "records", "callIds", "last-active", "next-step"
    ]  # fmt: skip


def test_campaigns_list_shows_moments_in_the_vdns_zone(test_settings: Settings) -> None:
    # Neither UTC nor the machine's zone: a moment shown in either would not match.
    settings = test_settings.model_copy(update={"vdn_time_zones": {1: "+05:45"}})
    moment = int(SettableClock()() * 1000)
    asyncio.run(count_events(settings, [
        *campaign_events(1, "C1", ["b1"], 2, moment_ms=moment), closed("C1", moment),
    ]))  # fmt: skip
    listed = run_cli(settings, "campaigns", "list", "--vdn", "1", "--json")
    next_step_at = json.loads(listed.stdout)[0]["nextStepAt"]
    table = run_cli(settings, "campaigns", "list", "--vdn", "1")
    assert table.returncode == 0, table.stderr
    row = table.stdout.splitlines()[1].split()
    assert row[0] == "C1"
    expected = datetime.fromtimestamp(next_step_at, timezone(timedelta(hours=5, minutes=45)))
    assert row[5] == expected.isoformat(timespec="minutes")
    assert row[5].endswith("+05:45")
