"""Builds the FastAPI application; nothing else lives here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from api.routes import health, statistics
from engine.keys import KeyLayout
from engine.statistics import StatisticsReader
from isales_stats.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.redis_url)
        app.state.redis = redis
        app.state.reader = StatisticsReader(redis, KeyLayout(settings.key_prefix))
        try:
            yield
        finally:
            await redis.aclose()

    app = FastAPI(
        title="isales-stats",
        summary="Outbound call statistics of the current day, CC-iSales compatible.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(statistics.router)
    app.include_router(health.router)
    return app
