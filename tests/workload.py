"""Large, realistic event streams for end-to-end tests and benchmarks, deterministic by seed.

Also what the engine should make of a stream (the reference model's countDetail) and what it
has made of it so far (read back from Redis), for the tests that compare the two.

Records are imported in batches, dialled up to three times (a connected call is final, the
third failed attempt too), some are removed; timestamps spread over the last hours and
yesterday, in GMT+08:00. Upstream duplicates are exact copies placed later in the stream.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from kafka import KafkaProducer
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from isales_stats.core.days import today_in
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.statistics import StatisticsReader
from isales_stats.engine.topics import ensure_topics
from tests.reference_model import reference_statistics

GMT8 = timezone(timedelta(hours=8))


def campaign_stream(
    events: int,
    *,
    vdn_id: int = 1,
    campaigns: int = 6,
    batches: int = 3,
    duplicate_rate: float = 0.02,
    seed: int = 1,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """About ``events`` events (exactly that many), in a dialer-like order."""
    rng = random.Random(seed)
    now_ms = int((now or datetime.now(UTC)).timestamp() * 1000)
    stream: list[dict[str, Any]] = []
    record = 0
    while len(stream) < events:
        record += 1
        campaign = f"camp-{rng.randrange(campaigns):03d}"
        common: dict[str, Any] = {
            "vdnId": vdn_id,
            "campaignId": campaign,
            "dataId": f"rec-{record}",
        }
        if rng.random() < 0.9:  # a few records are imported without a batch
            common["batchId"] = f"batch-{rng.randrange(batches)}"
        # Mostly today, some yesterday: the daily counters see two days.
        moment = now_ms - rng.randint(0, 30 * 3600 * 1000)
        stream.append({"eventType": "data.added", **common, "occurredAt": moment})
        for attempt in range(rng.choice((0, 1, 1, 2, 3))):
            moment = min(moment + rng.randint(1_000, 3_600_000), now_ms)
            connected = rng.random() < 0.4
            stream.append(
                {
                    "eventType": "call.result",
                    **common,
                    "callId": f"call-{record}-{attempt}",
                    "callStatus": 6 if connected else 5,
                    "failCode": "00000" if connected else rng.choice(("00603", "00537")),
                    "final": connected or attempt == 2,
                    "occurredAt": moment,
                }
            )
            if connected:
                break
        if rng.random() < 0.03:
            stream.append({"eventType": "data.removed", **common, "occurredAt": now_ms})
    del stream[events:]
    for _ in range(int(events * duplicate_rate)):
        index = rng.randrange(len(stream) - 1)
        stream.insert(rng.randrange(index + 1, len(stream)), stream[index])
    return stream[:events]


def encoded(stream: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs as the SDK would publish them."""
    return [
        (f"{event['vdnId']}:{event['campaignId']}".encode(), orjson.dumps(event))
        for event in stream
    ]


def publish(settings: Settings, stream: list[dict[str, Any]]) -> None:
    """Produce ``stream`` to the call-events topic, fast (big batches), acknowledged by all."""
    ensure_topics(settings)
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
    )
    for key, value in encoded(stream):
        producer.send(settings.call_events_topic, key=key, value=value)
    producer.flush()
    producer.close()


def expected_detail(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """VDN 1's countDetail today by the reference model (tests/reference_model.py)."""
    return reference_statistics(stream, default_zone=GMT8).count_detail(1, today_in(GMT8))


def read_detail(settings: Settings) -> list[dict[str, Any]]:
    """VDN 1's countDetail today as the engine has counted it, read from Redis."""

    async def read() -> list[dict[str, Any]]:
        async with AsyncRedis.from_url(settings.redis_url) as redis:
            reader = StatisticsReader(redis, KeyLayout(settings.key_prefix))
            return await reader.read_count_detail(1, today_in(GMT8))

    return asyncio.run(read())


def distinct_identities_counted(settings: Settings, campaigns: list[str]) -> int:
    """Records and calls the engine has recorded so far: a progress gauge (tests, benchmarks)."""
    layout = KeyLayout(settings.key_prefix)
    with Redis.from_url(settings.redis_url) as redis, redis.pipeline() as pipe:
        for campaign in campaigns:
            pipe.hlen(layout.campaign_records(1, campaign))
            pipe.scard(layout.campaign_calls(1, campaign))
        return sum(pipe.execute())
