"""Benchmark of history: what reading 30 days costs, and what keeping them costs the worker.

    python -m benchmarks.run history

1. Reads. 200 campaigns (2 batches each) with 30 days of calls, counted into the stack's
   Redis as a worker would. One ``isales-stats api`` answers, in turn, the history of 30 days
   by day, the same 30 days by hour (720 entries) and failcategorystatistics of 30 days, each
   request for the next campaign of the 200; next to each, a bare Starlette app answering the
   same body (``benchmarks.api.baseline_app``): what is left is the read itself.
2. Writes. The worker of this tree, which keeps each day's failCodes and hours, against the
   worker of the last revision without them (``WITHOUT_HISTORY``), taken in turn on the same
   stream (``benchmarks.against``): on the engine benchmark's stream, whose batches hold events
   of thirty different hours (the worst case: every batch writes fields of every hour), and on
   a live dialer's, whose results arrive within the hour.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from benchmarks import against
from benchmarks.api import (
    HEADERS,
    _baseline_server,
    api_bench_ground,
    api_server,
    interleaved_latency,
    plain_headers,
)
from isales_stats.core.days import today_in
from isales_stats.core.interface import FAIL_CATEGORY_PATH, HISTORY_PATH
from isales_stats.core.settings import Settings
from tests.support.counting import count_events
from tests.support.events import ADDED, CALL, call_event
from tests.support.ports import free_port

VDN = 1
CAMPAIGNS = 200
DAYS = 30
RECORDS_PER_DAY = 8  # per campaign: imported and dialled one to three times that day
REQUESTS = 1000  # per kind, in turn with its baseline: p99 is the 10th slowest
# The last revision whose worker keeps no failCodes and no hours (before 1258ccc).
WITHOUT_HISTORY = "6c3e497"
WRITE_RUNS = 3


def run() -> str:
    return "\n".join([_reads(), "", _writes()])


# --- 1 -----------------------------------------------------------------------------------


def _reads() -> str:
    with api_bench_ground("history") as (settings, workdir):
        events = asyncio.run(_fill(settings))
        today = today_in(settings.time_zone_of(VDN))
        first = today - timedelta(days=DAYS - 1)
        span = f"startDate={first}&endDate={today}"
        kinds = {
            "days": HISTORY_PATH.format(vdn_id=VDN) + "?campaignId={c}&" + span,
            "hours": HISTORY_PATH.format(vdn_id=VDN) + "?campaignId={c}&interval=hour&" + span,
            "fails": FAIL_CATEGORY_PATH.format(vdn_id=VDN) + "?campaignId={c}&" + span,
        }
        rows = []
        with api_server(settings, free_port(), workdir) as api:
            sizes = {}
            for kind, template in kinds.items():
                for n in range(CAMPAIGNS):
                    body = _get(api + template.format(c=_campaign(n)))
                    (workdir / f"{kind}-{n}.json").write_bytes(body)
                sizes[kind] = len(body)
            with _baseline_server(free_port(), workdir) as bare:
                for kind, template in kinds.items():
                    ours, baseline = interleaved_latency(
                        [
                            (api, _rotating(template), plain_headers),
                            (bare, _rotating(f"/{kind}-{{n}}"), plain_headers),
                        ],
                        REQUESTS,
                    )
                    rows.append((kind, sizes[kind], ours, baseline))
    labels = {
        "days": f"history, {DAYS} days by day",
        "hours": f"history, {DAYS} days by hour ({DAYS * 24} entries)",
        "fails": f"failcategorystatistics, {DAYS} days",
    }
    lines = [
        "## History and exception statistics",
        "",
        f"{CAMPAIGNS} campaigns of VDN {VDN}, 2 batches each, {RECORDS_PER_DAY} records a day "
        f"dialled over {DAYS} days ({events:,} events counted as a worker counts them). One "
        f"`isales-stats api` (authentication and flow control off), each request for the next "
        f"campaign of the {CAMPAIGNS}, {REQUESTS:,} requests per kind after a tenth as warm-up, "
        "in turn with a bare Starlette app answering the same bodies (the baseline: HTTP and "
        "the body's bytes, no Redis, no JSON written).",
        "",
        "| request | body | p50 | p99 | baseline p50 | baseline p99 | p50 over the baseline |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, size, ours, baseline in rows:
        lines.append(
            f"| {labels[kind]} | {size / 1024:,.1f} KiB | {ours.p50_ms:.2f} ms | "
            f"{ours.p99_ms:.2f} ms | {baseline.p50_ms:.2f} ms | {baseline.p99_ms:.2f} ms | "
            f"+{ours.p50_ms - baseline.p50_ms:.2f} ms |"
        )
    return "\n".join(lines)


def _campaign(n: int) -> str:
    return f"C{n:03d}"


def _rotating(template: str) -> Any:
    """The path of request n: the next campaign each time ({c} its id, {n} its number)."""
    return lambda index: template.format(c=_campaign(index % CAMPAIGNS), n=index % CAMPAIGNS)


def _get(url: str) -> bytes:
    return httpx.get(url, headers=HEADERS, timeout=60).raise_for_status().content


async def _fill(settings: Settings) -> int:
    """Every campaign's days: records imported and dialled over the day's working hours."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    for day in range(DAYS):
        for n in range(CAMPAIGNS):
            for record in range(RECORDS_PER_DAY):
                moment = now - timedelta(days=day, hours=rng.randrange(0, 12))
                at = int(moment.timestamp() * 1000)
                common = {"vdnId": VDN, "campaignId": _campaign(n),
                          "batchId": f"B{record % 2}", "dataId": f"d{day}-{record}"}  # fmt: skip
                events.append(call_event(ADDED, **common, occurredAt=at - 60_000))
                for attempt in range(rng.randrange(1, 4)):
                    connected = rng.random() < 0.4
                    events.append(
                        call_event(
                            CALL, **common, callId=f"c{day}-{record}-{attempt}",
                            callStatus=6 if connected else 5, final=connected or attempt == 2,
                            failCode=None if connected else rng.choice(["00603", "00537", "17"]),
                            occurredAt=min(at + attempt * 600_000, int(now.timestamp() * 1000)),
                        )
                    )  # fmt: skip
                    if connected:
                        break
    for start in range(0, len(events), 5000):
        await count_events(settings, events[start : start + 5000])
    return len(events)


# --- 2 -----------------------------------------------------------------------------------


def _writes() -> str:
    scattered = against.main(WITHOUT_HISTORY, WRITE_RUNS)
    live = against.main(WITHOUT_HISTORY, WRITE_RUNS, spread_hours=1)
    return "\n".join(
        [
            "### What keeping them costs the worker",
            "",
            f"`{WITHOUT_HISTORY}` is the last revision whose worker keeps no failCodes and no "
            "hours; this tree's worker keeps both. Each counts the same published stream from "
            "an empty private Redis, in turn (`python -m benchmarks.against "
            f"{WITHOUT_HISTORY} {WRITE_RUNS}`, the same command).",
            "",
            "The engine benchmark's stream: each record at a random moment of the last 30 hours, "
            "so every batch writes the fields of thirty hours (the worst case).",
            "",
            scattered,
            "",
            "A live dialer's stream: each record within the last hour (results arrive within the "
            "hour they happen).",
            "",
            live,
        ]
    )
