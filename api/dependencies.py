"""What the routes receive from the application: settings, Redis, the readers, the caller.

A read interface's parameters and admission come with its guarded read (api/interfaces.py).

Every provider is ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread,
which on the one-campaign path would cost more than the Redis round trip.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from isales_stats.api.auth import Caller, authenticate_caller
from isales_stats.api.push.hub import ChangeHub
from isales_stats.core.settings import Settings
from isales_stats.engine.context import CountingContext
from isales_stats.engine.history import HistoryReader
from isales_stats.engine.redis_connection import AnyRedis
from isales_stats.engine.statistics import StatisticsReader

Reader = TypeVar("Reader")


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _redis(request: Request) -> AnyRedis:
    redis: AnyRedis = request.app.state.redis
    return redis


async def _hub(request: Request) -> ChangeHub:
    hub: ChangeHub = request.app.state.push_hub
    return hub


def one_reader(
    build: Callable[[AnyRedis, CountingContext], Reader],
) -> Callable[[Request], Awaitable[Reader]]:
    """A dependency giving the application's one reader ``build(redis, context)``, made at its
    first request from the lifespan's Redis client and counting context (api/main.py): a read
    interface's reader needs no line of its own there."""

    async def reader(request: Request) -> Reader:
        readers: dict[Any, Any] = request.app.state.readers
        made: Reader | None = readers.get(build)
        if made is None:
            made = readers[build] = build(request.app.state.redis, request.app.state.context)
        return made

    return reader


SettingsDep = Annotated[Settings, Depends(_settings)]
RedisDep = Annotated[AnyRedis, Depends(_redis)]
ReaderDep = Annotated[StatisticsReader, Depends(one_reader(StatisticsReader))]
HistoryReaderDep = Annotated[HistoryReader, Depends(one_reader(HistoryReader))]
HubDep = Annotated[ChangeHub, Depends(_hub)]
# 401 when the signature does not hold; declared first on a route, it is checked first.
CallerDep = Annotated[Caller, Depends(authenticate_caller)]
