"""Push: the statistics as Server-Sent Events, against real API processes and the real Redis.

The counting is the engine's own (``EventCounter`` and its script) run from the test, so that a
test decides when each change happens: between two reads of a subscriber, or while it is away.
"Every change, in the counting order" is checked against the campaign's change stream, which the
counting script writes in the same atomic step as the counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from subprocess import PIPE
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from isales_stats.client import AkSkAuth, server_sent_events, watch
from isales_stats.commands import cli_command
from isales_stats.core.days import today_in
from isales_stats.core.events import event_from_json
from isales_stats.core.interface import STREAM_PATH, parse_change_id
from isales_stats.core.reference_model import reference_statistics
from isales_stats.core.settings import Settings
from isales_stats.engine.changes import change_from_entry
from isales_stats.engine.context import CountingContext
from isales_stats.engine.counting import NO_LIMITS, EventCounter
from isales_stats.engine.statistics import StatisticsReader
from tests.support.api_process import ApiProcess
from tests.support.clock import GMT8, now_ms
from tests.support.credentials import (
    ACCESS_KEY,
    OTHER_ACCESS_KEY,
    OTHER_SECRET_KEY,
    SECRET_KEY,
    TENANT_A_KEY,
    TENANT_A_SECRET,
    TEST_KEYS,
)
from tests.support.events import CALL, call_event
from tests.support.streams import campaign_events

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

VDN = 1
CAMPAIGNS = ("1001", "1002", "1003")
# The eleven counters of an event, as the statistics interface names them.
COUNTER_NAMES = (
    "totalCount", "unCallCount", "totalCalledCount", "totalCallSucc", "totalFinishCount",
    "dailyCalledCount", "dailyCallSucc", "dailyFinishCount", "dailyCount", "calledCount",
    "finishCount",
)  # fmt: skip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pushing(settings: Settings, **more: Any) -> Settings:
    """Every change pushed (no pacing), heartbeats quick enough for a test to see."""
    return settings.model_copy(
        update={"push_max_events_per_second": 0.0, "push_heartbeat_seconds": 1.0, **more}
    )


def stream_url(base_url: str, vdn_id: int = VDN, campaign_id: str | None = None) -> str:
    query = f"?campaignId={campaign_id}" if campaign_id else ""
    return base_url + STREAM_PATH.format(vdn_id=vdn_id) + query


class Counting:
    """The engine's counter on the test's Redis and key prefix."""

    def __init__(self, settings: Settings, changes_kept: int = 256) -> None:
        self.redis = Redis.from_url(settings.redis_url)
        self.context = CountingContext.from_settings(
            settings,
            zone_of=lambda vdn_id: GMT8,
            retention_days=40,
            limits=NO_LIMITS,
            changes_kept=changes_kept,
        )
        self.layout = self.context.layout
        self.counter = EventCounter(self.redis, self.context)

    async def count(self, events: Sequence[dict[str, Any]]) -> None:
        await self.counter.count([event_from_json(event) for event in events])

    async def recorded(self, campaign_id: str) -> list[dict[str, Any]]:
        """The campaign's change stream: every change, in the counting order."""
        entries = await self.redis.xrange(self.layout.campaign_changes(VDN, campaign_id))
        return [change_data(campaign_id, entry) for entry in entries or []]

    async def statistics(self) -> list[dict[str, Any]]:
        reader = StatisticsReader(self.redis, self.context)
        return await reader.read_count_detail(VDN, today_in(GMT8))

    async def close(self) -> None:
        await self.redis.aclose()


def change_data(campaign_id: str, entry: Any) -> dict[str, Any]:
    change = change_from_entry(campaign_id, entry, snapshot=False)
    data: dict[str, Any] = json.loads(change.to_json())
    return data


@asynccontextmanager
async def counting(settings: Settings, changes_kept: int = 256) -> AsyncIterator[Counting]:
    found = Counting(settings, changes_kept)
    try:
        yield found
    finally:
        await found.close()


class Subscription:
    """One connection's events (id, event, data parsed), read in a task until closed."""

    def __init__(self, url: str, headers: dict[str, str], auth: httpx.Auth | None) -> None:
        self.url, self.headers, self.auth = url, headers, auth
        self.events: list[dict[str, Any]] = []
        self.comments = 0
        self.status = 0
        self.body: dict[str, Any] = {}  # the refusal's JSON, when not 200
        self.opened = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with (
            httpx.AsyncClient(auth=self.auth, timeout=httpx.Timeout(10, read=None)) as http,
            http.stream("GET", self.url, headers=self.headers) as response,
        ):
            self.status = response.status_code
            if response.status_code != 200:
                # Read before the subscription counts as opened: leaving the ``async with``
                # right away must find the refusal's body, not cancel its reading.
                self.body = json.loads(await response.aread())
                self.opened.set()
                return
            self.opened.set()

            async def lines() -> AsyncIterator[str]:
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        self.comments += 1
                    yield line

            async for event in server_sent_events(lines()):
                self.events.append({**event, "data": json.loads(event["data"])})

    async def __aenter__(self) -> Subscription:
        self.task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait_for(self.opened.wait(), 10)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.task is not None
        self.task.cancel()  # the client goes: the connection drops, mid-stream
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def until(
        self, check: Callable[[list[dict[str, Any]]], bool], within: float = 20
    ) -> None:
        deadline = time.monotonic() + within
        while not check(self.events):
            assert self.task is not None, "not entered"
            assert not self.task.done(), "the stream ended"
            assert time.monotonic() < deadline, f"not within {within} s: {self.events[-3:]}"
            await asyncio.sleep(0.05)

    async def until_heartbeat(self, within: float = 20) -> None:
        """Until a heartbeat after what arrived so far: the server has sent everything it had.

        Frames go out in order, and a heartbeat only once the subscriber's queue stayed empty
        for ``push_heartbeat_seconds``: what it receives before a heartbeat is all there was.
        """
        seen = self.comments
        await self.until(lambda _: self.comments > seen, within)

    @property
    def last_id(self) -> str:
        return str(self.events[-1]["id"])


async def subscribers_served(api: ApiProcess, wanted: int, within: float = 20) -> None:
    """Until the API process serves ``wanted`` push subscribers (its gauge)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            metrics = (await http.get(f"{api.operations_url}/metrics")).text
            if f"isales_api_push_subscribers {float(wanted)}" in metrics.splitlines():
                return
            assert time.monotonic() < deadline, f"not {wanted} subscribers within {within} s"
            await asyncio.sleep(0.05)


def subscribe(
    url: str, *, last_event_id: str | None = None, auth: httpx.Auth | None = None
) -> Subscription:
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return Subscription(url, headers, auth)


def latest_by_campaign(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a client shows: each campaign's newest change (by changeId) and its counters."""
    latest: dict[str, dict[str, Any]] = {}
    for event in events:
        data = event["data"]
        kept = latest.get(data["campaignId"])
        if kept is None or parse_change_id(data["changeId"]) > parse_change_id(kept["changeId"]):
            latest[data["campaignId"]] = data
    return latest


def as_client_keeps(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per campaign, the changes a client keeps: each newer than the last it kept."""
    kept: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        data = event["data"]
        of_campaign = kept.setdefault(data["campaignId"], [])
        newer = not of_campaign or parse_change_id(data["changeId"]) > parse_change_id(
            of_campaign[-1]["changeId"]
        )
        if newer:
            of_campaign.append(data)
    return kept


def counters_of(data: dict[str, Any]) -> dict[str, int]:
    return {name: data[name] for name in COUNTER_NAMES}


def shuffled_chunks(events: list[dict[str, Any]], parts: int, seed: int) -> list[list[Any]]:
    """The events with a tenth repeated, shuffled, in ``parts`` chunks of the same order."""
    rng = random.Random(seed)
    doubled = events + rng.sample(events, len(events) // 10)
    rng.shuffle(doubled)
    size = -(-len(doubled) // parts)
    return [doubled[start : start + size] for start in range(0, len(doubled), size)]


# --- resuming ------------------------------------------------------------------------------


async def test_a_dropped_subscriber_resumes_on_another_process_and_misses_no_change(
    test_settings: Settings, tmp_path: Any
) -> None:
    settings = pushing(test_settings)
    moment = now_ms()
    events = [
        event
        for campaign_id in CAMPAIGNS
        for event in campaign_events(VDN, campaign_id, ["b1", "b2"], 8, moment_ms=moment)
    ]
    chunks = shuffled_chunks(events, 12, seed=7)
    with (
        ApiProcess(settings, log_dir=tmp_path) as first,
        ApiProcess(settings, log_dir=tmp_path) as second,
    ):
        async with counting(settings) as redis:
            async with subscribe(stream_url(first.url)) as before:
                for chunk in chunks[:4]:
                    await redis.count(chunk)
                    await asyncio.sleep(0.05)
                await before.until(lambda events: len(events) >= 4)
            # Away: the connection dropped mid-stream, and changes go on.
            for chunk in chunks[4:8]:
                await redis.count(chunk)
            async with subscribe(stream_url(second.url), last_event_id=before.last_id) as after:
                for chunk in chunks[8:]:
                    await redis.count(chunk)
                    await asyncio.sleep(0.05)
                final = await redis.statistics()
                wanted = {campaign["campaignId"]: campaign for campaign in final}
                await after.until(
                    lambda events: (
                        {
                            campaign_id: counters_of(data)
                            for campaign_id, data in latest_by_campaign(
                                before.events + events
                            ).items()
                        }
                        == {campaign_id: counters_of(c) for campaign_id, c in wanted.items()}
                    )
                )
            recorded = {campaign_id: await redis.recorded(campaign_id) for campaign_id in CAMPAIGNS}
    # The final statistics are the reference model's: exact under repeats and shuffles.
    model = reference_statistics(event for chunk in chunks for event in chunk)
    assert final == model.count_detail(VDN, today_in(GMT8))
    # Every change, in the order it was counted, none skipped, once each as a client keeps them.
    kept = as_client_keeps(before.events + after.events)
    for campaign_id in CAMPAIGNS:
        assert [data["changeId"] for data in kept[campaign_id]] == [
            data["changeId"] for data in recorded[campaign_id]
        ]
        assert [counters_of(data) for data in kept[campaign_id]] == [
            counters_of(data) for data in recorded[campaign_id]
        ]
    # Resumed from a point still kept: changes, no snapshot.
    assert all(event["event"] == "change" for event in after.events)


async def test_a_campaigns_subscriber_resumes_exactly_after_its_last_change(
    test_settings: Settings, tmp_path: Any
) -> None:
    settings = pushing(test_settings)
    campaign_id = CAMPAIGNS[0]
    events = campaign_events(VDN, campaign_id, ["b1"], 20, moment_ms=now_ms())
    chunks = shuffled_chunks(events, 10, seed=3)
    with (
        ApiProcess(settings, log_dir=tmp_path) as first,
        ApiProcess(settings, log_dir=tmp_path) as second,
    ):
        async with counting(settings) as redis:
            # Other campaigns' changes never reach a campaign's subscriber.
            await redis.count(campaign_events(VDN, "other", ["b1"], 3, moment_ms=now_ms()))
            async with subscribe(stream_url(first.url, campaign_id=campaign_id)) as before:
                for chunk in chunks[:5]:
                    await redis.count(chunk)
                await before.until(lambda events: len(events) >= 5)
            for chunk in chunks[5:]:
                await redis.count(chunk)
            recorded = await redis.recorded(campaign_id)
            url = stream_url(second.url, campaign_id=campaign_id)
            async with subscribe(url, last_event_id=before.last_id) as after:
                await after.until(
                    lambda events: (
                        bool(events) and events[-1]["data"]["changeId"] == recorded[-1]["changeId"]
                    )
                )
    received = [event["data"] for event in before.events + after.events]
    assert {data["campaignId"] for data in received} == {campaign_id}
    # Not one repeat: the id is the change's own, and the resumption starts right after it.
    assert [data["changeId"] for data in received] == [data["changeId"] for data in recorded]
    assert [event["id"] for event in after.events] == [d["changeId"] for d in after_data(after)]


def after_data(subscription: Subscription) -> list[dict[str, Any]]:
    return [event["data"] for event in subscription.events]


async def test_a_point_no_longer_kept_gets_a_snapshot_first(
    test_settings: Settings, tmp_path: Any
) -> None:
    settings = pushing(test_settings)
    campaign_id = CAMPAIGNS[0]
    moment = now_ms()
    async with counting(settings, changes_kept=5) as redis:
        # One change per call: 250 of them, far past what is kept (5, trimmed by whole nodes).
        await redis.count([call_event("data.added", vdnId=VDN, campaignId=campaign_id,
                                      dataId="r0", occurredAt=moment)])  # fmt: skip
        (first,) = await redis.recorded(campaign_id)
        for number in range(250):
            await redis.count(
                [call_event(CALL, vdnId=VDN, campaignId=campaign_id, dataId=f"r{number}",
                            callId=f"c{number}", occurredAt=moment, callStatus=6, final=True)]
            )  # fmt: skip
        recorded = await redis.recorded(campaign_id)
        assert len(recorded) < 250
        with ApiProcess(settings, log_dir=tmp_path) as api:
            for url in (stream_url(api.url, campaign_id=campaign_id), stream_url(api.url)):
                async with subscribe(url, last_event_id=first["changeId"]) as resumed:
                    await resumed.until(lambda events: bool(events))
                    await resumed.until_heartbeat()  # all of the first read arrived
                (only,) = resumed.events
                assert only["event"] == "snapshot"
                assert only["data"] == {**recorded[-1], "snapshot": True}
                assert only["data"]["totalCalledCount"] == 250
            # Without Last-Event-ID: a snapshot too, of the latest.
            async with subscribe(stream_url(api.url)) as fresh:
                await fresh.until(lambda events: bool(events))
            assert fresh.events[0]["event"] == "snapshot"
            assert fresh.events[0]["data"]["changeId"] == recorded[-1]["changeId"]


# --- what counting records -------------------------------------------------------------------


async def test_counting_records_a_change_only_when_the_campaigns_counters_change(
    test_settings: Settings,
) -> None:
    moment = now_ms()
    campaign_id = CAMPAIGNS[0]
    events = campaign_events(VDN, campaign_id, ["b1"], 5, moment_ms=moment)
    async with counting(test_settings) as redis:
        await redis.count(events)
        (change,) = await redis.recorded(campaign_id)
        await redis.count(events)  # all duplicates: nothing changed, nothing recorded
        assert len(await redis.recorded(campaign_id)) == 1
        # A call of the day before changes the totals, not today's daily counters: a change,
        # carrying today's day and daily counters.
        yesterday = moment - 86_400_000
        await redis.count(
            [call_event(CALL, vdnId=VDN, campaignId=campaign_id, dataId="late", callId="late",
                        occurredAt=yesterday, callStatus=6, final=False)]
        )  # fmt: skip
        _, late = await redis.recorded(campaign_id)
        assert late["statDate"] == today_in(GMT8).isoformat()
        assert late["totalCalledCount"] == change["totalCalledCount"] + 1
        assert late["dailyCalledCount"] == change["dailyCalledCount"]
        (campaign,) = await redis.statistics()
        assert counters_of(late) == counters_of(campaign)
        # Switched off (0 kept): no change recorded.
        redis.counter.changes_kept = 0
        await redis.count(campaign_events(VDN, campaign_id, ["b2"], 2, moment_ms=moment))
        assert len(await redis.recorded(campaign_id)) == 2


# --- pacing, heartbeats, slow clients, caps, signatures ------------------------------------------


async def test_changes_faster_than_the_rate_are_coalesced_into_the_latest(
    test_settings: Settings, tmp_path: Any
) -> None:
    settings = pushing(test_settings, push_max_events_per_second=4.0)
    campaign_id = CAMPAIGNS[0]
    moment = now_ms()
    with ApiProcess(settings, log_dir=tmp_path) as api:
        async with counting(settings) as redis, subscribe(stream_url(api.url)) as subscriber:
            started = time.monotonic()
            for number in range(150):
                await redis.count(
                    [call_event(CALL, vdnId=VDN, campaignId=campaign_id, dataId=f"r{number}",
                                callId=f"c{number}", occurredAt=moment, callStatus=5)]
                )  # fmt: skip
                await asyncio.sleep(0.01)
            elapsed = time.monotonic() - started
            await subscriber.until(
                lambda events: bool(events) and events[-1]["data"]["totalCalledCount"] == 150
            )
    changes = [event for event in subscriber.events if event["event"] == "change"]
    # At most 4 a second (and the first at once), never one older than the one before.
    assert len(changes) <= 4 * (elapsed + 1) + 1, (len(changes), elapsed)
    called = [event["data"]["totalCalledCount"] for event in changes]
    assert called == sorted(called)


async def test_heartbeats_keep_a_quiet_stream_alive(test_settings: Settings, tmp_path: Any) -> None:
    settings = pushing(test_settings, push_heartbeat_seconds=0.3)
    with ApiProcess(settings, log_dir=tmp_path) as api:
        async with subscribe(stream_url(api.url)) as quiet:
            for _ in range(3):
                await quiet.until_heartbeat(within=10)
    assert quiet.status == 200
    assert quiet.comments >= 3
    assert quiet.events == []


async def test_a_slow_subscriber_is_dropped_and_the_others_get_every_change(
    test_settings: Settings, tmp_path: Any
) -> None:
    settings = pushing(test_settings)
    moment = now_ms()
    campaigns = [f"busy-{number}" for number in range(300)]
    with ApiProcess(settings, log_dir=tmp_path) as api:
        # A client that asks and never reads. What it does not read fills the kernel's buffers
        # (megabytes on loopback), then the server's, then its queue (1,000 events): 15,000
        # changes of about 420 bytes are well past all three.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        slow.connect(("127.0.0.1", api.port))
        path = STREAM_PATH.format(vdn_id=VDN)
        slow.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        try:
            async with counting(settings) as redis, subscribe(stream_url(api.url)) as reader:
                await subscribers_served(api, 2)  # the slow one too, before any change
                for number in range(50):  # a change of every campaign per round
                    await redis.count(
                        [call_event(CALL, vdnId=VDN, campaignId=campaign_id,
                                    dataId=f"r{number}", callId=f"c{number}", occurredAt=moment,
                                    callStatus=6) for campaign_id in campaigns]
                    )  # fmt: skip
                final = await redis.statistics()
                wanted = {c["campaignId"]: counters_of(c) for c in final}
                await reader.until(
                    lambda events: (
                        {
                            campaign_id: counters_of(data)
                            for campaign_id, data in latest_by_campaign(events).items()
                        }
                        == wanted
                    ),
                    within=60,
                )
            async with httpx.AsyncClient(timeout=5) as http:
                metrics = (await http.get(f"{api.operations_url}/metrics")).text
        finally:
            slow.close()
    assert 'isales_api_push_dropped_total{reason="slow"} 1.0' in metrics
    # The reader kept up: every change of every campaign (50 each), in order.
    kept = as_client_keeps(reader.events)
    assert sorted(kept) == sorted(campaigns)
    assert all(len(changes) == 50 for changes in kept.values())


async def test_subscriptions_are_signed_scoped_and_capped(
    test_settings: Settings, tmp_path: Any
) -> None:
    settings = pushing(
        test_settings,
        auth_enabled=True,
        auth_keys=SecretStr(TEST_KEYS),
        auth_keys_file=None,
        push_max_subscribers=2,
        push_max_subscribers_per_key=1,
    )
    mine = AkSkAuth(ACCESS_KEY, SECRET_KEY)
    other = AkSkAuth(OTHER_ACCESS_KEY, OTHER_SECRET_KEY)
    tenant = AkSkAuth(TENANT_A_KEY, TENANT_A_SECRET)
    with ApiProcess(settings, log_dir=tmp_path) as api:
        url = stream_url(api.url)
        async with subscribe(url) as unsigned:
            pass
        assert (unsigned.status, unsigned.body["resultCode"]) == (401, "02000401")
        async with subscribe(url, auth=tenant) as out_of_scope:  # tenant A sees VDNs 100-109
            pass
        assert (out_of_scope.status, out_of_scope.body["resultCode"]) == (401, "02000401")
        async with subscribe(url, auth=mine, last_event_id="yesterday") as bad_id:
            pass
        assert (bad_id.status, bad_id.body["resultCode"]) == (400, "02000007")
        async with subscribe(url + "?batchId=b1", auth=mine) as batch:
            pass
        assert (batch.status, batch.body["resultCode"]) == (400, "0200001")
        async with subscribe(url, auth=mine) as held:
            assert held.status == 200
            async with subscribe(url, auth=mine) as second_of_key:
                pass
            assert (second_of_key.status, second_of_key.body["resultCode"]) == (429, "02000429")
            async with subscribe(url, auth=other) as other_key:
                assert other_key.status == 200
                async with subscribe(stream_url(api.url, 100), auth=tenant) as third:
                    pass
                assert (third.status, third.body["resultCode"]) == (503, "02000503")
        # Gone: their places are free again, once the API has seen the connections close.
        for _ in range(50):
            async with subscribe(url, auth=mine) as again:
                pass
            if again.status == 200:
                break
            await asyncio.sleep(0.1)
        assert again.status == 200, again.body


async def test_the_clients_watch_signs_resumes_and_skips_repeats(
    test_settings: Settings, tmp_path: Any
) -> None:
    settings = pushing(
        test_settings, auth_enabled=True, auth_keys=SecretStr(TEST_KEYS), auth_keys_file=None
    )
    events = campaign_events(VDN, CAMPAIGNS[0], ["b1"], 10, moment_ms=now_ms())
    chunks = shuffled_chunks(events, 5, seed=11)
    with ApiProcess(settings, log_dir=tmp_path) as api:
        async with counting(settings) as redis:
            await redis.count(chunks[0])
            changes = watch(api.url, VDN, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                            retry_seconds=0.2)  # fmt: skip
            received = []
            first = await anext(changes)
            received.append(first)
            assert first.snapshot
            for chunk in chunks[1:]:
                await redis.count(chunk)
            recorded = await redis.recorded(CAMPAIGNS[0])
            while received[-1].change_id != recorded[-1]["changeId"]:
                received.append(await asyncio.wait_for(anext(changes), 10))
            await changes.aclose()
    assert [change.change_id for change in received] == [
        data["changeId"] for data in recorded[len(recorded) - len(received) :]
    ]
    assert received[-1].counters == {
        name: value
        for name, value in recorded[-1].items()
        if name not in ("campaignId", "changeId", "statDate", "snapshot")
    }


async def test_a_lost_pub_sub_connection_costs_latency_never_a_change(
    test_settings: Settings, tmp_path: Any
) -> None:
    settings = pushing(test_settings)
    campaign_id = CAMPAIGNS[0]
    events = campaign_events(VDN, campaign_id, ["b1"], 12, moment_ms=now_ms())
    chunks = shuffled_chunks(events, 6, seed=5)
    with ApiProcess(settings, log_dir=tmp_path) as api:
        async with counting(settings) as redis, subscribe(stream_url(api.url)) as subscriber:
            await redis.count(chunks[0])
            await subscriber.until(lambda events: len(events) == 1)
            # Redis drops the API's Pub/Sub connection (what a restart, a failover or a slow
            # subscriber cut off by client-output-buffer-limit does); the changes go on.
            assert await redis.redis.client_kill_filter(_type="pubsub") == 1
            for chunk in chunks[1:]:
                await redis.count(chunk)
            recorded = await redis.recorded(campaign_id)
            await subscriber.until(
                lambda events: events[-1]["data"]["changeId"] == recorded[-1]["changeId"]
            )
        async with httpx.AsyncClient(timeout=5) as http:
            metrics = (await http.get(f"{api.operations_url}/metrics")).text
    assert "isales_api_push_reconnects_total 1.0" in metrics
    assert [event["data"]["changeId"] for event in subscriber.events] == [
        data["changeId"] for data in recorded
    ]


async def test_isales_stats_watch_prints_each_change_and_stops_on_ctrl_c(
    test_settings: Settings, tmp_path: Any
) -> None:
    settings = pushing(
        test_settings, auth_enabled=True, auth_keys=SecretStr(TEST_KEYS), auth_keys_file=None
    )
    campaign_id = CAMPAIGNS[0]
    events = campaign_events(VDN, campaign_id, ["b1"], 6, moment_ms=now_ms())
    with ApiProcess(settings, log_dir=tmp_path) as api:
        environment = {
            **os.environ,
            **settings.as_environment(),
            "ISALES_CLIENT_ACCESS_KEY": ACCESS_KEY,
            "ISALES_CLIENT_SECRET_KEY": SECRET_KEY,
        }
        async with counting(settings) as redis:
            await redis.count(events[:4])
            command = cli_command(
                "watch", "--vdn", str(VDN), "--campaign", campaign_id, "--url", api.url, "--json"
            )
            watching = await asyncio.create_subprocess_exec(
                *command,
                env=environment,
                stdout=PIPE,
                stderr=PIPE,
                # Ctrl-C as a terminal sends it: a test run in the background (make test under
                # nohup, CI) would otherwise hand the child SIGINT ignored.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
            assert watching.stdout is not None
            first = json.loads(await asyncio.wait_for(watching.stdout.readline(), 20))
            await redis.count(events[4:])
            second = json.loads(await asyncio.wait_for(watching.stdout.readline(), 20))
            watching.send_signal(signal.SIGINT)
            _, errors = await asyncio.wait_for(watching.communicate(), 20)
            recorded = await redis.recorded(campaign_id)
    assert watching.returncode == 0, errors.decode()
    assert first["snapshot"] is True
    assert second["snapshot"] is False
    assert second["id"] == second["changeId"] == recorded[-1]["changeId"]
    assert {name: second[name] for name in COUNTER_NAMES} == counters_of(recorded[-1])


async def test_an_api_process_that_stops_ends_its_streams_first(
    test_settings: Settings, tmp_path: Any
) -> None:
    settings = pushing(test_settings)
    with ApiProcess(settings, log_dir=tmp_path) as api:
        async with subscribe(stream_url(api.url)) as subscriber:
            assert api.process is not None
            # uvicorn waits for every response to end before it stops, and a stream never ends
            # by itself: the API ends them (its client resumes on another process).
            api.process.send_signal(signal.SIGTERM)
            # uvicorn stops gracefully, then raises the signal again: the status says SIGTERM.
            assert await asyncio.to_thread(api.process.wait, 10) == -signal.SIGTERM
            assert subscriber.task is not None
            await asyncio.wait_for(subscriber.task, 5)  # the stream ended, cleanly


async def test_a_whole_vdn_resuming_gets_each_campaigns_latest_too(
    test_settings: Settings, tmp_path: Any
) -> None:
    # No margin: a change announced later than the margin is what this guards against.
    settings = pushing(test_settings, push_resume_margin_ms=0)
    moment = now_ms()
    async with counting(settings) as redis:
        for campaign_id in CAMPAIGNS:
            await redis.count(campaign_events(VDN, campaign_id, ["b1"], 3, moment_ms=moment))
        latest = {campaign_id: (await redis.recorded(campaign_id))[-1] for campaign_id in CAMPAIGNS}
        newest_id = max(latest.values(), key=lambda data: parse_change_id(data["changeId"]))
        with ApiProcess(settings, log_dir=tmp_path) as api:
            async with subscribe(
                stream_url(api.url), last_event_id=newest_id["changeId"]
            ) as resumed:
                await resumed.until(lambda events: len(events) == len(CAMPAIGNS))
    # Nothing came after the point: each campaign's latest, as a snapshot (repeats a client drops).
    assert {event["data"]["campaignId"]: event["data"] for event in resumed.events} == {
        campaign_id: {**data, "snapshot": True} for campaign_id, data in latest.items()
    }
    assert {event["event"] for event in resumed.events} == {"snapshot"}


async def test_counting_goes_on_for_a_user_who_may_not_publish(test_settings: Settings) -> None:
    user, password = f"nopubsub-{test_settings.key_prefix.rsplit(':', 1)[1]}", "pw-0123456789"
    async with counting(test_settings) as admin:
        await admin.redis.acl_setuser(
            user,
            enabled=True,
            passwords=[f"+{password}"],
            keys=["*"],
            reset_channels=True,  # no channel: PUBLISH is refused
            categories=["+@read", "+@write", "+@scripting", "+@connection"],
            commands=["+info"],
        )
        try:
            redis = Redis.from_url(test_settings.redis_url, username=user, password=password)
            counter = EventCounter(redis, admin.context)
            events = campaign_events(VDN, CAMPAIGNS[0], ["b1"], 4, moment_ms=now_ms())
            await counter.count([event_from_json(event) for event in events])
            await redis.aclose()
            (campaign,) = await admin.statistics()
            (change,) = await admin.recorded(CAMPAIGNS[0])
            assert counters_of(change) == counters_of(campaign)
            model = reference_statistics(events).count_detail(VDN, today_in(GMT8))
            assert [campaign] == model
        finally:
            await admin.redis.acl_deluser(user)
