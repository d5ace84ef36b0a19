"""What the routes receive from the application: settings, Redis, the statistics reader."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from engine.statistics import StatisticsReader
from isales_stats.settings import Settings


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


def _reader(request: Request) -> StatisticsReader:
    reader: StatisticsReader = request.app.state.reader
    return reader


SettingsDep = Annotated[Settings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
ReaderDep = Annotated[StatisticsReader, Depends(_reader)]
