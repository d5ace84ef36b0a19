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


async def _reader(request: Request) -> StatisticsReader:
    reader: StatisticsReader = request.app.state.reader
    return reader


async def _history_reader(request: Request) -> HistoryReader:
    reader: HistoryReader = request.app.state.history_reader
    return reader


async def _hub(request: Request) -> ChangeHub:
    hub: ChangeHub = request.app.state.push_hub
    return hub


def reader_built_once(
    build: Callable[[AnyRedis, CountingContext], Reader],
) -> Callable[[Request], Awaitable[Reader]]:
    """A dependency giving the application's one ``build(redis, context)``, made at its first
    request: the reader of a new read interface needs no line in the lifespan (api/main.py)."""

    async def reader(request: Request) -> Reader:
        state = request.app.state
        redis: AnyRedis = state.redis
        if not hasattr(state, "readers_built_once"):
            state.readers_built_once = {}
        built: dict[Any, tuple[AnyRedis, Any]] = state.readers_built_once
        if build not in built or built[build][0] is not redis:  # a lifespan began again
            built[build] = (redis, build(redis, CountingContext.from_settings(state.settings)))
        made: Reader = built[build][1]
        return made

    return reader


SettingsDep = Annotated[Settings, Depends(_settings)]
RedisDep = Annotated[AnyRedis, Depends(_redis)]
ReaderDep = Annotated[StatisticsReader, Depends(_reader)]
HistoryReaderDep = Annotated[HistoryReader, Depends(_history_reader)]
HubDep = Annotated[ChangeHub, Depends(_hub)]
# 401 when the signature does not hold; declared first on a route, it is checked first.
CallerDep = Annotated[Caller, Depends(authenticate_caller)]
