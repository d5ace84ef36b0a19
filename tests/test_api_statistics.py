"""The statistics endpoint's 200 answers: shape, selection, order and snapshots, on real Redis.

The expected bodies come from the reference model (isales_stats/core/reference_model.py), fed
the same events that EventCounter counted into Redis.
"""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from isales_stats.api.errors import INTERNAL_ERROR_MESSAGE, ErrorCode, envelope
from isales_stats.api.schemas import (
    BatchStatistics,
    CampaignStatistics,
    Counters,
    StatisticsResponse,
)
from isales_stats.core.days import today_in
from isales_stats.core.reference_model import COUNTER_KEYS, reference_statistics
from isales_stats.core.settings import Settings
from isales_stats.engine.context import CountingContext
from isales_stats.engine.statistics import CorruptCounters, StatisticsReader
from tests.support.app_client import serve, statistics_path
from tests.support.clock import now_ms
from tests.support.counting import count_events
from tests.support.streams import campaign_events

pytestmark = [pytest.mark.stack, pytest.mark.anyio]

VDN = 7
OTHER_VDN = 8
# Code-point order puts "C10" before "C2" and "b10" before "b2": the API sorts the same way.
CAMPAIGN_BATCHES: dict[str, list[str | None]] = {
    "C2": ["b2", "b10", "a", None],
    "C10": ["x"],
    "A1": [None],
    "活动 1": ["批次 A", "批次 B"],
    # Ids may hold the two characters JSON must escape (the reader writes the body itself).
    'Q "quoted" \\ id': ['b "1" \\', "é"],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def events(test_settings: Settings) -> list[dict[str, Any]]:
    """Counted into Redis: the campaigns above in VDN 7, and one campaign in VDN 8."""
    moment = now_ms()
    generated = [
        event
        for campaign, batches in CAMPAIGN_BATCHES.items()
        for event in campaign_events(VDN, campaign, batches, 6, moment_ms=moment)
    ]
    generated += campaign_events(OTHER_VDN, "C2", ["b2"], 3, moment_ms=moment)
    await count_events(test_settings, generated)
    return generated


def expected_detail(
    settings: Settings, events: list[dict[str, Any]], vdn_id: int = VDN
) -> list[dict[str, Any]]:
    model = reference_statistics(events)
    return model.count_detail(vdn_id, today_in(settings.time_zone_of(vdn_id)))


async def get_detail(settings: Settings, query: str = "") -> list[dict[str, Any]]:
    async with serve(settings) as client:
        response = await client.get(statistics_path(VDN) + query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    detail: list[dict[str, Any]] = response.json()["countDetail"]
    return detail


async def test_whole_vdn_has_every_campaign_with_all_its_batches_in_order(
    test_settings: Settings, events: list[dict[str, Any]]
) -> None:
    async with serve(test_settings) as client:
        response = await client.get(statistics_path(VDN))
    body = response.json()
    assert list(body) == ["countDetail"]
    assert body["countDetail"] == expected_detail(test_settings, events)
    assert [c["campaignId"] for c in body["countDetail"]] == [
        "A1", "C10", "C2", 'Q "quoted" \\ id', "活动 1"
    ]  # fmt: skip
    assert [b["batchId"] for b in body["countDetail"][2]["batchDetail"]] == ["a", "b10", "b2"]
    assert [b["batchId"] for b in body["countDetail"][3]["batchDetail"]] == ['b "1" \\', "é"]


async def test_every_entry_carries_all_eleven_integer_counters_and_string_ids(
    test_settings: Settings, events: list[dict[str, Any]]
) -> None:
    detail = await get_detail(test_settings)
    StatisticsResponse.model_validate({"countDetail": detail}, strict=True)
    counters = set(COUNTER_KEYS)
    assert set(Counters.model_fields) == counters
    for campaign in detail:
        assert set(campaign) == counters | {"campaignId", "batchDetail"}
        assert isinstance(campaign["campaignId"], str)
        for batch in campaign["batchDetail"]:
            assert set(batch) == counters | {"batchId"}
            assert isinstance(batch["batchId"], str)
            BatchStatistics.model_validate(batch, strict=True)
        # A bool is an int in Python but not a JSON integer: check the type exactly.
        entries = [campaign, *campaign["batchDetail"]]
        assert all(type(entry[name]) is int for entry in entries for name in counters)
        CampaignStatistics.model_validate(campaign, strict=True)


async def test_one_campaign_comes_with_all_its_batches(
    test_settings: Settings, events: list[dict[str, Any]]
) -> None:
    expected = {c["campaignId"]: c for c in expected_detail(test_settings, events)}
    assert await get_detail(test_settings, "?campaignId=C2") == [expected["C2"]]
    # Percent-encoded UTF-8 and a space: decoded as the campaign was written.
    encoded = "?campaignId=%E6%B4%BB%E5%8A%A8%201"
    assert await get_detail(test_settings, encoded) == [expected["活动 1"]]


async def test_an_unknown_campaign_is_an_empty_count_detail(
    test_settings: Settings, events: list[dict[str, Any]]
) -> None:
    assert await get_detail(test_settings, "?campaignId=nope") == []
    assert await get_detail(test_settings, "?campaignId=nope&batchId=b2") == []
    async with serve(test_settings) as client:
        response = await client.get(statistics_path(9999))
    assert response.json() == {"countDetail": []}


async def test_campaign_and_batch_give_campaign_counters_with_only_that_batch(
    test_settings: Settings, events: list[dict[str, Any]]
) -> None:
    whole = {c["campaignId"]: c for c in expected_detail(test_settings, events)}["C2"]
    only_b10 = [b for b in whole["batchDetail"] if b["batchId"] == "b10"]
    assert await get_detail(test_settings, "?campaignId=C2&batchId=b10") == [
        {**whole, "batchDetail": only_b10}
    ]
    # A batch the campaign does not have: the campaign's counters, no batch.
    assert await get_detail(test_settings, "?campaignId=C2&batchId=x") == [
        {**whole, "batchDetail": []}
    ]


async def test_an_empty_value_counts_as_absent(
    test_settings: Settings, events: list[dict[str, Any]]
) -> None:
    whole_vdn = await get_detail(test_settings)
    assert await get_detail(test_settings, "?campaignId=") == whole_vdn
    assert await get_detail(test_settings, "?campaignId=&batchId=") == whole_vdn
    assert await get_detail(test_settings, "?campaignId=C2&batchId=") == await get_detail(
        test_settings, "?campaignId=C2"
    )


async def test_leading_zeros_name_the_same_vdn(
    test_settings: Settings, events: list[dict[str, Any]]
) -> None:
    async with serve(test_settings) as client:
        padded = await client.get(statistics_path(f"000{VDN}") + "?campaignId=C10")
    assert padded.json()["countDetail"] == await get_detail(test_settings, "?campaignId=C10")


async def test_a_counter_the_engine_did_not_write_is_an_error_not_a_wrong_body(
    test_settings: Settings, events: list[dict[str, Any]]
) -> None:
    """Packed rows go from Redis into the body unparsed: anything but integers ≥ 0 is refused."""
    context = CountingContext.from_settings(test_settings)
    redis = Redis.from_url(test_settings.redis_url)
    try:
        await redis.hset(context.layout.campaign_rows(VDN, "C10"), "x", "1e3,2,3,2,1")
        with pytest.raises(CorruptCounters, match="1e3"):
            await StatisticsReader(redis, context).read_body(
                VDN, today_in(test_settings.time_zone_of(VDN)), "C10"
            )
    finally:
        await redis.aclose()
    async with serve(test_settings, raise_app_exceptions=False) as client:
        response = await client.get(statistics_path(VDN))
        untouched = await client.get(statistics_path(VDN) + "?campaignId=C2")
    assert response.status_code == 500
    assert response.json() == envelope(ErrorCode.INTERNAL_ERROR, INTERNAL_ERROR_MESSAGE)
    assert untouched.status_code == 200


async def test_a_response_never_holds_part_of_an_event(test_settings: Settings) -> None:
    """Readers racing a writer: a campaign always equals the sum of its batches.

    Every event changes a campaign's counters and its batch's counters in one script; a read
    that interleaved with it would see one changed and not the other. The writer applies small
    groups of events (added records, failed and connected calls, removals) in a tight loop while
    readers query the campaign and the whole VDN.
    """
    rng = random.Random(4)
    moment = now_ms()
    writes: list[list[dict[str, Any]]] = []
    for group in range(150):
        batch = f"b{group % 3}"
        common = {"vdnId": VDN, "campaignId": "race", "batchId": batch,
                  "dataId": f"d{group}", "occurredAt": moment}  # fmt: skip
        added = {"eventType": "data.added", **common}
        connected = rng.random() < 0.5
        call = {"eventType": "call.result", **common, "callId": f"call{group}",
                "callStatus": 6 if connected else 5, "final": connected}  # fmt: skip
        removed = {"eventType": "data.removed", **common}
        writes.append([added, call] if group % 10 else [added, removed])
    await count_events(test_settings, writes.pop(0))
    seen: set[tuple[int, ...]] = set()
    reads = 0
    writer_done = anyio.Event()

    async def write() -> None:
        for group in writes:
            await count_events(test_settings, group)
        writer_done.set()

    async def read(query: str) -> None:
        nonlocal reads
        while not writer_done.is_set():
            response = await client.get(statistics_path(VDN) + query)
            (campaign,) = response.json()["countDetail"]
            for name in COUNTER_KEYS:
                batches_sum = sum(batch[name] for batch in campaign["batchDetail"])
                assert campaign[name] == batches_sum, (name, campaign)
            seen.add(tuple(campaign[name] for name in COUNTER_KEYS))
            reads += 1

    async with serve(test_settings) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(write)
        tasks.start_soon(read, "")
        tasks.start_soon(read, "?campaignId=race")
    # The race was real: the readers saw many different states, not just the first and last.
    assert reads > 20
    assert len(seen) > 10, f"{len(seen)} states in {reads} reads"
