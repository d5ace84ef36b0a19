"""A long stream made and checked a chunk at a time, so that no chunk stays in memory.

Chunks of ``CHUNK_EVENTS`` events (campaign_stream, 2 % upstream duplicates), each with its own
records and calls (ids prefixed ``m{number}-``), so that the statistics of the whole are the
sum of the chunks' reference statistics. Each chunk spans ``CHUNK_CAMPAIGNS`` of the 48
``CAMPAIGNS``, the chunks taking turns over four groups of them, so that the keys spread over
the partitions and several workers share the load. The soak (tests/test_faults_soak.py) and
the million events after a crash (tests/test_consumer_group.py) run on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.support.detail import expected_detail
from tests.support.streams import campaign_stream

CHUNK_EVENTS = 10_000
CHUNK_CAMPAIGNS = 12  # each chunk's; the chunks take turns over four groups of them
CAMPAIGNS = [f"camp-{n:03d}" for n in range(4 * CHUNK_CAMPAIGNS)]


def chunk_sizes(total: int) -> list[int]:
    """``total`` events as whole chunks and the rest."""
    return [CHUNK_EVENTS] * (total // CHUNK_EVENTS) + (
        [total % CHUNK_EVENTS] if total % CHUNK_EVENTS else []
    )


def soak_chunk(seed: int, number: int, size: int, now: datetime) -> list[dict[str, Any]]:
    """Chunk ``number`` of the stream: its own records and calls (ids prefixed ``m{number}-``)
    in its group of campaigns (the model's cost grows with the campaigns of one chunk)."""
    tag = f"m{number}-"
    first = CHUNK_CAMPAIGNS * (number % 4)
    renamed = []
    for event in campaign_stream(size, campaigns=CHUNK_CAMPAIGNS, seed=seed + number, now=now):
        campaign = f"camp-{first + int(event['campaignId'].removeprefix('camp-')):03d}"
        copy = {**event, "campaignId": campaign, "dataId": tag + event["dataId"]}  # not shared
        if "callId" in copy:
            copy["callId"] = tag + copy["callId"]
        renamed.append(copy)
    return renamed


def add_details(total: dict[str, Any], detail: list[dict[str, Any]]) -> None:
    """Add one chunk's countDetail into ``total`` (campaignId -> counters and batches)."""
    for campaign in detail:
        into = total.setdefault(campaign["campaignId"], {"batches": {}})
        for name, value in campaign.items():
            if isinstance(value, int):
                into[name] = into.get(name, 0) + value
        for batch in campaign["batchDetail"]:
            batch_into = into["batches"].setdefault(batch["batchId"], {})
            for name, value in batch.items():
                if isinstance(value, int):
                    batch_into[name] = batch_into.get(name, 0) + value


def as_detail(total: dict[str, Any], keys: list[str], batch_keys: list[str]) -> list[Any]:
    """``add_details``'s sums in the API's own shape and order."""
    return [
        {
            "campaignId": campaign,
            **{key: total[campaign][key] for key in keys},
            "batchDetail": [
                {"batchId": batch, **{key: counters[key] for key in batch_keys}}
                for batch, counters in sorted(total[campaign]["batches"].items())
            ],
        }
        for campaign in sorted(total)
    ]


def expected_statistics(seed: int, sizes: list[int], now: datetime) -> list[dict[str, Any]]:
    """The reference model's statistics of the whole stream, a chunk at a time."""
    total: dict[str, Any] = {}
    keys: list[str] = []
    batch_keys: list[str] = []
    for number, size in enumerate(sizes):
        detail = expected_detail(soak_chunk(seed, number, size, now))
        add_details(total, detail)
        if not keys and detail:
            keys = [k for k in detail[0] if k not in ("campaignId", "batchDetail")]
            batch_keys = [
                k for k in detail[0]["batchDetail"][0] if k != "batchId"
            ]  # every campaign has batches in campaign_stream
    return as_detail(total, keys, batch_keys)
