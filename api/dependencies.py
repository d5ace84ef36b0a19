"""What the routes receive from the application: settings, Redis, the reader, admission, the caller.

Every provider is ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread,
which on the one-campaign path would cost more than the Redis round trip.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from isales_stats.api.admission import Admission
from isales_stats.api.auth import Caller, authenticate_caller
from isales_stats.api.parameters import (
    DayRangeQuery,
    StatisticsQuery,
    parse_fail_category_query,
    parse_history_query,
    parse_statistics_query,
    parse_stream_query,
)
from isales_stats.api.push.hub import ChangeHub
from isales_stats.core.settings import Settings
from isales_stats.core.signing import decode_query
from isales_stats.engine.history import HistoryReader
from isales_stats.engine.redis_connection import AnyRedis
from isales_stats.engine.statistics import StatisticsReader


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


async def _admission(request: Request) -> Admission:
    admission: Admission = request.app.state.admission
    return admission


async def _statistics_query(request: Request) -> StatisticsQuery:
    return parse_statistics_query(
        request.path_params["vdnId"],
        decode_query(request.scope["query_string"]),
        request.headers.getlist("content-type"),
    )


async def _fail_category_query(request: Request) -> DayRangeQuery:
    return parse_fail_category_query(
        request.path_params["vdnId"],
        decode_query(request.scope["query_string"]),
        request.headers.getlist("content-type"),
    )


async def _history_query(request: Request) -> DayRangeQuery:
    return parse_history_query(
        request.path_params["vdnId"],
        decode_query(request.scope["query_string"]),
        request.headers.getlist("content-type"),
    )


async def _stream_query(request: Request) -> StatisticsQuery:
    return parse_stream_query(
        request.path_params["vdnId"], decode_query(request.scope["query_string"])
    )


SettingsDep = Annotated[Settings, Depends(_settings)]
RedisDep = Annotated[AnyRedis, Depends(_redis)]
ReaderDep = Annotated[StatisticsReader, Depends(_reader)]
HistoryReaderDep = Annotated[HistoryReader, Depends(_history_reader)]
AdmissionDep = Annotated[Admission, Depends(_admission)]
HubDep = Annotated[ChangeHub, Depends(_hub)]
# 401 when the signature does not hold; declared first on a route, it is checked first.
CallerDep = Annotated[Caller, Depends(authenticate_caller)]
# 400 with the iSales code when the parameters break the interface's rules.
StatisticsQueryDep = Annotated[StatisticsQuery, Depends(_statistics_query)]
FailCategoryQueryDep = Annotated[DayRangeQuery, Depends(_fail_category_query)]
HistoryQueryDep = Annotated[DayRangeQuery, Depends(_history_query)]
StreamQueryDep = Annotated[StatisticsQuery, Depends(_stream_query)]
