"""Benchmark of the decisions: a whole VDN's abandon rate and pacing beside its statistics.

    python -m benchmarks.run decisions

One VDN holds 200 campaigns of 5 batches each (the statistics benchmark's VDN), its calls
spread over the last two days, some abandoned, counted into the real Redis by EventCounter as a
worker counts them: so every scope has a window hash (docs/adr/0008-rolling-windows.md) with
buckets of many minutes, hours and days. One ``isales-stats api`` (authentication and flow
control off) answers the whole VDN's statistics, abandon rate and pacing, their requests taken
in turn so that the three see the same moments of the machine. Nothing is counted while they
run: once the clock leaves the minute of the counting, every scope's window sums are corrected
for the time passed (the read's slower path, one more HMGET per scope), as a VDN whose
campaigns paused is read.

``ISALES_BENCH_DECISIONS_REQUESTS`` sets the requests per interface (default 1000; a small
number checks that the benchmark runs, not what it measures).
"""

from __future__ import annotations

import asyncio
import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from benchmarks.api import HEADERS, api_bench_ground, api_server, interleaved_latency, plain_headers
from isales_stats.core.interface import ABANDON_RATE_PATH, PACING_PATH, STATISTICS_PATH
from isales_stats.core.settings import Settings
from tests.support.counting import count_events
from tests.support.events import ADDED, CALL, call_event
from tests.support.ports import free_port

VDN = 1
CAMPAIGNS = 200
BATCHES = 5
RECORDS_PER_BATCH = 10
SPREAD_HOURS = 48
REQUESTS = int(os.environ.get("ISALES_BENCH_DECISIONS_REQUESTS", "1000"))
# Failed calls' failCodes: the first two abandoned (queue abandoned, no agent), the rest not.
FAIL_CODES = ("00701", "01046", "00603", "00537", "17")


def run() -> str:
    with api_bench_ground("decisions") as (settings, workdir):
        events = asyncio.run(_fill(settings))
        paths = {
            "statistics": STATISTICS_PATH.format(vdn_id=VDN),
            "abandon rate": ABANDON_RATE_PATH.format(vdn_id=VDN),
            "pacing": PACING_PATH.format(vdn_id=VDN),
        }
        with api_server(settings, free_port(), workdir) as api:
            sizes = {name: len(_get(api + path)) for name, path in paths.items()}
            latencies = interleaved_latency(
                [(api, path, plain_headers) for path in paths.values()], REQUESTS
            )
    statistics = latencies[0]
    lines = [
        "## Decisions API",
        "",
        f"One VDN of {CAMPAIGNS} campaigns × {BATCHES} batches, {RECORDS_PER_BATCH} records a "
        f"batch called over the last {SPREAD_HOURS} hours, some calls abandoned ({events:,} "
        "events counted by EventCounter into the real Redis, window hashes included). One "
        "`isales-stats api` (one uvicorn worker, authentication and flow control off, access "
        "log on) answers the whole VDN's statistics, abandon rate and pacing, their requests in "
        "turn over one keep-alive connection each (http.client, the first tenth as warm-up). "
        "Nothing is counted meanwhile: past the minute of the counting, each scope's window "
        "sums are corrected for the time passed (the slower path of read_decisions.lua).",
        "",
        "| whole VDN | body | p50 | p99 | p50 / statistics | p99 / statistics |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (name, size), latency in zip(sizes.items(), latencies, strict=True):
        lines.append(
            f"| {name} | {size / 1024:,.1f} KiB | {latency.p50_ms:.2f} ms | "
            f"{latency.p99_ms:.2f} ms | {latency.p50_ms / statistics.p50_ms:.2f} | "
            f"{latency.p99_ms / statistics.p99_ms:.2f} |"
        )
    lines += [
        "",
        f"Samples: {statistics.requests:,} requests per interface. The abandon rate and the "
        "pacing read the VDN's campaign set, then one Lua script over every campaign: its "
        "packed totals, and per scope one HMGET of its window hash (two when the sums are "
        "stale), then work out four windows (abandon) or six paces, a state and an ETA (pacing) "
        "per scope in Python. Target: p99 within twice the statistics read "
        "([ADR 0008](adr/0008-rolling-windows.md)): "
        + ", ".join(
            f"{name} **{'met' if latency.p99_ms <= 2 * statistics.p99_ms else 'not met'}**"
            for name, latency in zip(list(sizes)[1:], latencies[1:], strict=True)
        )
        + ".",
    ]
    return "\n".join(lines)


def _get(url: str) -> bytes:
    return httpx.get(url, headers=HEADERS, timeout=60).raise_for_status().content


async def _fill(settings: Settings) -> int:
    """Every batch's records, imported and called one to three times over the last hours."""
    rng = random.Random(17)
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    events: list[dict[str, Any]] = []
    for campaign in range(CAMPAIGNS):
        for batch in range(BATCHES):
            for record in range(RECORDS_PER_BATCH):
                moment = now - timedelta(minutes=rng.randrange(0, SPREAD_HOURS * 60))
                at = int(moment.timestamp() * 1000)
                common = {"vdnId": VDN, "campaignId": f"C{campaign:03d}", "batchId": f"B{batch}",
                          "dataId": f"d{batch}-{record}"}  # fmt: skip
                events.append(call_event(ADDED, **common, occurredAt=at - 60_000))
                for attempt in range(rng.randrange(1, 4)):
                    connected = rng.random() < 0.4
                    events.append(
                        call_event(
                            CALL, **common, callId=f"c{campaign}-{batch}-{record}-{attempt}",
                            callStatus=6 if connected else 5, final=connected or attempt == 2,
                            failCode=None if connected else rng.choice(FAIL_CODES),
                            occurredAt=min(at + attempt * 300_000, now_ms),
                        )
                    )  # fmt: skip
                    if connected:
                        break
    for start in range(0, len(events), 2000):
        await count_events(settings, events[start : start + 2000])
    return len(events)
