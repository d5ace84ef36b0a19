"""Reading an export: a VDN's campaigns, then their counters a bounded part at a time.

An export (docs/api.md, "Exports") may cover every campaign of a VDN over every day the
retention keeps, a million rows and more, so it is never read at once. Its first round trip
lists the campaigns (``campaigns_read``: the one the API's admission rides on, as for a whole
VDN's statistics); then come parts, each one round trip of a bounded size, read one ahead of
the rows being written (``read_ahead``): the API holds at most two parts, whatever the size of
the export.

- **Statistics**: ``CAMPAIGNS_PER_READ`` campaigns per part, read by the statistics interface's
  own reader (engine/statistics.py), so that every part is one snapshot and its entries are
  those a whole VDN's answer holds.
- **History**: each campaign's days in spans of at most ``DAYS_PER_SCRIPT``, each span one call
  of the history's script, exactly the read of one history request (engine/history.py); spans
  go together into parts of at most ``DAYS_PER_READ`` days.

Each part is a snapshot of its campaigns, not the whole export one: counts that move while an
export runs show in the parts read after they moved (as a whole VDN's campaigns on a Redis
Cluster are read microseconds apart).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import date
from typing import Any, TypeVar

import orjson

from isales_stats.engine.context import CountingContext
from isales_stats.engine.history import DayHistory, HistoryReader
from isales_stats.engine.reads import (
    PipelinedRead,
    live_campaigns_read,
    reads_together,
    run_read,
)
from isales_stats.engine.redis_connection import AnyRedis
from isales_stats.engine.statistics import StatisticsReader

T = TypeVar("T")
U = TypeVar("U")

# Campaigns per part of a statistics export: about 300 scopes of a VDN whose campaigns have
# five batches each, one script call on a single Redis.
CAMPAIGNS_PER_READ = 50
# Days per call of the history's script: what one history request reads at most (30 days
# apart, both ends counted), so that no call of an export holds Redis longer than one of those.
DAYS_PER_SCRIPT = 31
# Days per part of a history export, the spans of one or more campaigns: by hour, up to 3 x 31
# days x 24 hours of rows (and each day's hours hash, up to 125 fields) per round trip.
DAYS_PER_READ = 3 * DAYS_PER_SCRIPT

CountDetail = list[dict[str, Any]]
CampaignDays = tuple[str, list[DayHistory]]


class ExportReader:
    """The reads of the statistics and history exports (engine/reads.py: ``PipelinedRead``)."""

    def __init__(self, redis: AnyRedis, context: CountingContext) -> None:
        self.redis = redis
        self.layout = context.layout
        self.statistics = StatisticsReader(redis, context)
        self.history = HistoryReader(redis, context)

    def campaigns_read(self, vdn_id: int, campaign_id: str | None) -> PipelinedRead[list[str]]:
        """The campaigns of an export: the one asked for (nothing to read), else the VDN's live
        ones, sorted, as the statistics interface's whole VDN answers them."""
        if campaign_id is not None:

            async def the_one(replies: list[Any]) -> list[str]:
                return [campaign_id]

            return PipelinedRead(_nothing, the_one)
        return live_campaigns_read(self.layout, vdn_id)

    def statistics_parts(
        self, vdn_id: int, day: date, campaign_ids: Sequence[str], batch_id: str | None = None
    ) -> AsyncIterator[CountDetail]:
        """The countDetail entries of ``campaign_ids`` (as the statistics interface answers
        them, ``day`` their today), a part at a time; unknown campaigns have none."""
        reads = (
            _then(self.statistics.campaigns_read(vdn_id, day, list(part), batch_id), _detail)
            for part in _parts(campaign_ids, CAMPAIGNS_PER_READ)
        )
        return read_ahead(self.redis, reads)

    def history_parts(
        self,
        vdn_id: int,
        campaign_ids: Sequence[str],
        days: Sequence[date],
        today: date,
        batch_id: str | None = None,
        hours: bool = False,
    ) -> AsyncIterator[list[CampaignDays]]:
        """Each campaign's ``days`` (ascending, none after today), as the history interface
        reads them, in the campaigns' order: a part at a time, a campaign's days possibly
        spread over parts."""
        spans = list(_parts(days, DAYS_PER_SCRIPT))
        # As many campaigns' spans as make DAYS_PER_READ days: 3 of 31 days, or 93 of today.
        per_read = max(1, DAYS_PER_READ // len(spans[0]))

        def span_read(campaign: str, span: list[date]) -> PipelinedRead[CampaignDays]:
            read = self.history.days_read(vdn_id, campaign, span, today, batch_id, hours)
            return _then(read, lambda histories: (campaign, histories))

        units = ((campaign, span) for campaign in campaign_ids for span in spans)
        reads = (
            reads_together([span_read(campaign, span) for campaign, span in part])
            for part in _parts(units, per_read)
        )
        return read_ahead(self.redis, reads)


async def read_ahead(redis: AnyRedis, reads: Iterable[PipelinedRead[T]]) -> AsyncIterator[T]:
    """Each read's answer in order, the next one's round trip under way while the caller uses
    this one: at most two answers held at once, however many reads. Reads are made as they are
    needed (``reads`` may be a generator). A caller that stops early cancels the read ahead."""
    upcoming = iter(reads)

    def start_next() -> asyncio.Task[T] | None:
        read = next(upcoming, None)
        return None if read is None else asyncio.ensure_future(run_read(redis, read))

    pending = start_next()
    try:
        while pending is not None:
            answer = await pending
            pending = start_next()
            yield answer
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
        if pending is not None:
            pending.add_done_callback(_forget)


def _forget(task: asyncio.Task[Any]) -> None:
    """A read ahead nobody will use: its failure is not news (asyncio would log it)."""
    if not task.cancelled():
        task.exception()


def _nothing(pipe: Any) -> None:
    """Queues nothing: the request's admission alone goes in its round trip."""


def _detail(body: bytes) -> CountDetail:
    detail: CountDetail = orjson.loads(body)["countDetail"]
    return detail


def _then(read: PipelinedRead[T], change: Callable[[T], U]) -> PipelinedRead[U]:
    """``read`` with its answer passed through ``change``."""
    finish: Callable[[list[Any]], Awaitable[T]] = read.finish

    async def changed(replies: list[Any]) -> U:
        return change(await finish(replies))

    return PipelinedRead(read.queue, changed, read.scripts)


def _parts(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), lazily."""
    part: list[T] = []
    for item in items:
        part.append(item)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part
