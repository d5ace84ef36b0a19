"""Window hashes written straight into Redis, as the counting script leaves them.

For tests of the read side alone (engine/decisions.py, read_decisions.lua): a scope's calls are
given as buckets (a moment and what it counted), and ``write_scope`` writes the scope's window
hash in the format of docs/adr/0008-rolling-windows.md as it stands after counting them with a
worker clock at ``counted_at_ms``: one bucket per minute, hour and day, those older than every
window of their kind left out, ``life``, ``last`` and ``sums`` as of the buckets of that
moment. It also writes the scope's packed totals row (what the statistics read) and lists the
campaign in its VDN, so that a reader finds it as it finds a counted one.

The end-to-end tests hold the reader to the engine's own counting and to the reference model;
this writer only has to agree with the ADR's format.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from isales_stats.core.days import MINUTE_MS, day_of
from isales_stats.core.decisions import Counts
from isales_stats.core.keys import TOTAL_COUNTERS, KeyLayout
from isales_stats.core.windows import (
    BUCKET_PREFIX,
    LAST_CALL_FIELD,
    LIFE_FIELD,
    SUMS_FIELD,
    WINDOWS,
    Now,
    day_number,
    hour_number,
    hour_shift,
)


@dataclass(frozen=True, slots=True)
class Bucketed:
    """What calls stamped at ``at_ms`` (epoch ms) counted: calls, connects, abandoned and
    finished records."""

    at_ms: int
    counts: Counts


def packed(counts: Counts) -> str:
    return f"{counts.calls},{counts.connects},{counts.abandoned},{counts.finished}"


def window_fields(calls: Sequence[Bucketed], counted_at_ms: int, zone: tzinfo) -> dict[str, str]:
    """The window hash of a scope that counted ``calls`` with its worker clock at
    ``counted_at_ms`` (none of the calls stamped after it by more than the clock-skew
    allowance)."""
    now = Now.at(counted_at_ms, zone)
    buckets: dict[str, dict[int, Counts]] = {kind: defaultdict(Counts) for kind in BUCKET_PREFIX}
    life = Counts()
    last = None
    for call in calls:
        minute = call.at_ms // MINUTE_MS
        day = day_of(call.at_ms, zone)
        numbers = {
            "minute": minute,
            "hour": hour_number(minute, hour_shift(day, zone)),
            "day": day_number(day),
        }
        for kind, number in numbers.items():
            buckets[kind][number] = buckets[kind][number].plus(call.counts)
        life = life.plus(call.counts)
        last = minute if last is None else max(last, minute)
    oldest = {
        kind: min(now.first_bucket(name) for name, (of, _) in WINDOWS.items() if of == kind)
        for kind in BUCKET_PREFIX
    }
    fields = {
        f"{BUCKET_PREFIX[kind]}{number}": packed(counts)
        for kind, numbered in buckets.items()
        for number, counts in numbered.items()
        if number >= oldest[kind]
    }
    sums = [f"{now.minute},{now.hour},{now.day}"]
    for name, (kind, _) in WINDOWS.items():
        first = now.first_bucket(name)
        total = Counts()
        for number, counts in buckets[kind].items():
            if number >= first:
                total = total.plus(counts)
        sums.append(packed(total))
    fields[LIFE_FIELD] = packed(life)
    if last is not None:
        fields[LAST_CALL_FIELD] = str(last)
    fields[SUMS_FIELD] = ";".join(sums)
    return fields


async def write_scope(
    redis: Redis,
    layout: KeyLayout,
    vdn_id: int,
    campaign_id: str,
    calls: Sequence[Bucketed],
    *,
    counted_at_ms: int,
    zone: tzinfo,
    records: int,
    batch_id: str | None = None,
) -> None:
    """A scope's window hash (``window_fields``), its totals row and its campaign listed.

    The totals row holds ``records`` known records, the calls, connects and finished records
    of ``calls``, and no uncalled record (the read side does not use it)."""
    window_key = layout.scope_window(vdn_id, campaign_id, batch_id)
    await redis.delete(window_key)
    if calls:
        fields: dict[FieldT, EncodableT] = {
            name: value for name, value in window_fields(calls, counted_at_ms, zone).items()
        }
        await redis.hset(window_key, mapping=fields)
    life = Counts()
    for call in calls:
        life = life.plus(call.counts)
    totals = {
        "totalCount": records,
        "unCallCount": 0,
        "totalCalledCount": life.calls,
        "totalCallSucc": life.connects,
        "totalFinishCount": life.finished,
    }
    row = ",".join(str(totals[name]) for name in TOTAL_COUNTERS)
    await redis.hset(layout.campaign_rows(vdn_id, campaign_id), batch_id or "", row)
    await redis.sadd(layout.vdn_campaigns(vdn_id), campaign_id)
