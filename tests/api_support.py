"""Helpers of the API tests: the real app served in-process, and counters filled in real Redis.

``serve`` runs the app's lifespan and talks to it through httpx's ASGI transport: the same app,
Redis and scripts as under uvicorn, without a process per test. The tests that are about
processes (several APIs sharing flow control, refusing to start, schemathesis over HTTP) start
real ones with tests/services.py.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from isales_stats.api.main import create_app
from isales_stats.client import CONTENT_TYPE, STATISTICS_PATH, AkSkAuth
from isales_stats.core.events import event_from_json
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.counting import EventCounter

BASE_URL = "http://127.0.0.1:8000"
JSON_HEADERS = {"Content-Type": CONTENT_TYPE}
ACCESS_KEY, SECRET_KEY = "test-ak", "test-sk"
OTHER_ACCESS_KEY, OTHER_SECRET_KEY = "other-ak", "other-sk"
TEST_KEYS = f"{ACCESS_KEY}:{SECRET_KEY},{OTHER_ACCESS_KEY}:{OTHER_SECRET_KEY}"


def statistics_path(vdn_id: int | str) -> str:
    return STATISTICS_PATH.format(vdn_id=vdn_id)


@asynccontextmanager
async def serve(
    app_or_settings: FastAPI | Settings,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    client_address: str = "127.0.0.1",
    raise_app_exceptions: bool = True,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app (built from settings if need be), its lifespan running.

    An exception escaping the app fails the test, unless ``raise_app_exceptions`` is False: then
    the client sees the 500 the app's handler answered with, as a real client would.
    """
    app = app_or_settings if isinstance(app_or_settings, FastAPI) else create_app(app_or_settings)
    auth = AkSkAuth(access_key, secret_key) if access_key and secret_key else None
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(
            app=app, client=(client_address, 50000), raise_app_exceptions=raise_app_exceptions
        )
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers=JSON_HEADERS, auth=auth
        ) as client:
            yield client


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def campaign_events(
    vdn_id: int,
    campaign_id: str,
    batch_ids: Sequence[str | None],
    records_per_batch: int,
    *,
    moment_ms: int,
    seed: int = 1,
) -> list[dict[str, Any]]:
    """Records added to each batch, most dialled once or twice, some connected (JSON events).

    A batch of ``None`` adds records without a batchId: they count for the campaign only.
    """
    rng = random.Random(f"{seed}:{vdn_id}:{campaign_id}")
    events: list[dict[str, Any]] = []
    for batch_id in batch_ids:
        for record in range(records_per_batch):
            common: dict[str, Any] = {
                "vdnId": vdn_id,
                "campaignId": campaign_id,
                "dataId": f"{batch_id}-{record}",
                "occurredAt": moment_ms,
            }
            if batch_id is not None:
                common["batchId"] = batch_id
            events.append({"eventType": "data.added", **common})
            for attempt in range(rng.choice([0, 1, 1, 2])):
                connected = rng.random() < 0.5
                events.append(
                    {
                        "eventType": "call.result",
                        **common,
                        "callId": f"{campaign_id}-{batch_id}-{record}-{attempt}",
                        "callStatus": 6 if connected else 5,
                        "final": connected,
                    }
                )
                if connected:
                    break
    return events


async def count_events(settings: Settings, events: Sequence[dict[str, Any]]) -> None:
    """Apply the JSON ``events`` to the counters exactly as a worker would."""
    redis = Redis.from_url(settings.redis_url)
    try:
        counter = EventCounter(
            redis,
            KeyLayout(settings.key_prefix),
            settings.time_zone_of,
            settings.daily_retention_days,
        )
        await counter.count([event_from_json(event) for event in events])
    finally:
        await redis.aclose()
