"""Reading a campaign's progress back: its calls, connects and finished records per minute.

The counting script keeps them per minute of arrival on the worker's clock
(engine/count_events/, its end): the minute still accumulating in a small hash
(``{P}:{vdn:c}:progress:current``), and each minute before it, once a later batch arrives, as
one entry of a capped stream (``{P}:{vdn:c}:progress``, id = the minute's start in epoch ms).

Both are read in one round trip, the open minute first: a batch counted between the two
commands can only move that minute into the stream, where the second command finds it again
(the stream's entry, final, wins), so no minute is lost or counted twice between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from isales_stats.core.days import MINUTE_MS, minute_start_ms
from isales_stats.core.keys import PROGRESS_FIELDS
from isales_stats.engine.context import CountingContext
from isales_stats.engine.reads import PipelinedRead, run_read
from isales_stats.engine.redis_connection import AnyRedis, text_of
from isales_stats.engine.statistics import CorruptCounters

# The field of the open minute's hash that names its minute (epoch ms), besides PROGRESS_FIELDS.
_OPEN_MINUTE = "minute"


@dataclass(frozen=True)
class MinuteProgress:
    """One minute of a campaign: when it starts (epoch ms) and what was counted in it."""

    start_ms: int
    calls: int = 0
    connects: int = 0
    finished: int = 0


class ProgressReader:
    def __init__(self, redis: AnyRedis, context: CountingContext) -> None:
        self.redis = redis
        self.layout = context.layout
        self.clock = context.clock

    async def last_minutes(
        self, vdn_id: int, campaign_id: str, minutes: int
    ) -> list[MinuteProgress]:
        """The campaign's last ``minutes`` minutes, ascending (see ``last_minutes_read``)."""
        return await run_read(self.redis, self.last_minutes_read(vdn_id, campaign_id, minutes))

    def last_minutes_read(
        self, vdn_id: int, campaign_id: str, minutes: int
    ) -> PipelinedRead[list[MinuteProgress]]:
        """Every minute of the last ``minutes`` up to now, the current one last (what it has so
        far), with zeros where nothing was counted; an unknown campaign is zeros throughout.
        A ``PipelinedRead`` (engine/reads.py): one round trip."""
        last_ms = minute_start_ms(self.clock())
        first_ms = last_ms - (minutes - 1) * MINUTE_MS
        open_key = self.layout.campaign_progress_current(vdn_id, campaign_id)
        stream_key = self.layout.campaign_progress(vdn_id, campaign_id)

        def queue(pipe: Any) -> None:
            pipe.hmget(open_key, [_OPEN_MINUTE, *PROGRESS_FIELDS])
            pipe.xrange(stream_key, f"{first_ms}-0", f"{last_ms}-0")

        async def progress(replies: list[Any]) -> list[MinuteProgress]:
            open_minute, entries = replies
            counted: dict[int, MinuteProgress] = {}
            if open_minute[0] is not None:
                start_ms = _integer(campaign_id, open_minute[0])
                counted[start_ms] = _minute(campaign_id, start_ms, open_minute[1:])
            for entry_id, fields in entries:
                start_ms = _integer(campaign_id, text_of(entry_id).partition("-")[0])
                named = {text_of(name): value for name, value in fields.items()}
                values = [named.get(name) for name in PROGRESS_FIELDS]
                counted[start_ms] = _minute(campaign_id, start_ms, values)
            return [
                counted.get(start_ms) or MinuteProgress(start_ms)
                for start_ms in range(first_ms, last_ms + MINUTE_MS, MINUTE_MS)
            ]

        return PipelinedRead(queue, progress)


def _minute(campaign_id: str, start_ms: int, values: list[bytes | None]) -> MinuteProgress:
    calls, connects, finished = (_integer(campaign_id, value or b"0") for value in values)
    return MinuteProgress(start_ms, calls, connects, finished)


def _integer(campaign_id: str, value: bytes | str) -> int:
    """A stored count or minute: a non-negative integer, or the store was written by something
    else."""
    text = text_of(value)
    if not (text.isascii() and text.isdigit()):
        raise CorruptCounters(f"campaign {campaign_id!r}: a progress value is {text!r:.40}")
    return int(text)
