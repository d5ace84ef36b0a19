"""Benchmark of campaigns that end: what a VDN's read costs, and what Redis holds over 90 days.

    python -m benchmarks.run lifecycle

1. The VDN reads what lives. Three VDNs in one Redis: A has 50 live campaigns; B the same 50
   and 5,000 campaigns that the lifecycle released (closed, then swept past their grace with
   an injected clock); C the same 5,050 campaigns, all live: what B cost when a VDN's read
   walked every campaign it had counted. One ``isales-stats api`` answers whole-VDN requests
   of A and B in turn (the ratio is then not the noise between separate runs), and of C
   apart, for context.
2. Memory you can predict. 90 simulated days of steady traffic: every day new campaigns are
   imported and dialled over three days, then closed; each is released after its grace and
   deleted after the retention. The events are counted in-process by EventCounter into a
   private Redis, and the lifecycle sweeps every day, both on the same injected clock.
   Redis' own clock cannot move: each simulated day the keys whose expiry has passed on the
   simulated clock are unlinked by hand, as Redis would have expired them. Printed per day:
   ``used_memory`` (INFO), the live records, and what the dataset holds per live record.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis

from benchmarks.api import (
    HEADERS,
    api_bench_ground,
    api_server,
    interleaved_latency,
    plain_headers,
)
from isales_stats.client import STATISTICS_PATH
from isales_stats.commands.stack.redis import RedisServer
from isales_stats.core.events import event_from_json
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.context import CountingContext
from isales_stats.engine.counting import NO_LIMITS, EventCounter
from isales_stats.engine.lifecycle import CampaignLifecycle
from tests.support.clock import SettableClock
from tests.support.ports import free_port
from tests.support.steady_traffic import Day, TrafficShape, simulate
from tests.support.streams import campaign_events

# --- 1. the VDN's read ----------------------------------------------------------------------
LIVE_CAMPAIGNS = 50
RELEASED_CAMPAIGNS = 5000
LIVE_VDN, MIXED_VDN, ALL_LIVE_VDN = 1, 2, 3
READ_REQUESTS = 2000  # per VDN, A and B in turn: p99 is the 20th slowest
ALL_LIVE_REQUESTS = 100

# --- 2. ninety days (tests/support/steady_traffic.py) ---------------------------------------
SHAPE = TrafficShape()
# The lifecycle of the simulation: the defaults, but a retention of 30 days, so that 90 days
# run well past the horizon (the default 90 would need 130 simulated days to show it).
SIMULATED_RETENTION_DAYS = 30
FLAT_WITHIN = 0.10
RECORD_TARGET_BYTES = 150


def run() -> str:
    return "\n".join([_vdn_read(), "", _ninety_days()])


# --- 1 -----------------------------------------------------------------------------------


def _vdn_read() -> str:
    with api_bench_ground("life") as (settings, workdir):
        released = asyncio.run(_fill_vdns(settings))
        with api_server(settings, free_port(), workdir) as api:
            paths = {vdn: STATISTICS_PATH.format(vdn_id=vdn) for vdn in (1, 2, 3)}
            bodies = {
                vdn: httpx.get(api + path, headers=HEADERS, timeout=60).raise_for_status().content
                for vdn, path in paths.items()
            }
            live, mixed = interleaved_latency(
                [(api, paths[LIVE_VDN], plain_headers), (api, paths[MIXED_VDN], plain_headers)],
                READ_REQUESTS,
            )
            (all_live,) = interleaved_latency(
                [(api, paths[ALL_LIVE_VDN], plain_headers)], ALL_LIVE_REQUESTS
            )
    answered = {vdn: _campaign_ids(body) for vdn, body in bodies.items()}
    if not answered[LIVE_VDN] == answered[MIXED_VDN] == answered[ALL_LIVE_VDN][:LIVE_CAMPAIGNS]:
        raise RuntimeError("the VDN with released campaigns answered other than its live ones")
    rows = [
        (f"A: {LIVE_CAMPAIGNS} live campaigns", live, bodies[LIVE_VDN]),
        (f"B: the same {LIVE_CAMPAIGNS} live and {released:,} released", mixed, bodies[MIXED_VDN]),
        (f"C: those {LIVE_CAMPAIGNS + released:,} campaigns all live (every one is read; "
         "what B cost before released campaigns left the index)", all_live,
         bodies[ALL_LIVE_VDN]),
    ]  # fmt: skip
    lines = [
        "## A VDN's read after its campaigns end",
        "",
        f"Whole-VDN requests to one `isales-stats api` (authentication and flow control off): "
        f"A and B in turn, {READ_REQUESTS:,} each after a tenth as warm-up; C apart, "
        f"{ALL_LIVE_REQUESTS} requests. Live campaigns have 5 batches of 10 records, the "
        "released ones 1 batch of 2; B's released campaigns were counted, closed and released "
        "by the lifecycle's own sweep (injected clock, past the 24-hour grace).",
        "",
        "| VDN | body | p50 | p99 |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {label} | {len(body) / 1024:,.1f} KiB | {m.p50_ms:.2f} ms | {m.p99_ms:.2f} ms |"
        for label, m, body in rows
    ]
    lines += [
        f"| B / A | | **{mixed.p50_ms / live.p50_ms:.2f}** | "
        f"**{mixed.p99_ms / live.p99_ms:.2f}** |",
        "",
        "B answers A's campaigns and no other: its released campaigns are in the VDN's "
        "released index (`{P}:vdn:{vdnId}:campaigns:released`), not in the live one its read "
        "walks, and each is still answered by campaignId until the retention deletes it. "
        "`tests/test_lifecycle.py::test_a_vdn_with_thousands_of_released_campaigns_reads_only_"
        "what_lives` checks the same without a clock: both reads look up 101 keys.",
    ]
    return "\n".join(lines)


def _campaign_ids(body: bytes) -> list[str]:
    return [entry["campaignId"] for entry in orjson.loads(body)["countDetail"]]


async def _fill_vdns(settings: Settings) -> int:
    """A, B and C counted, B's extra campaigns closed and released; returns how many."""
    clock = SettableClock()
    moment = int(clock() * 1000)
    layout = KeyLayout(settings.key_prefix)
    # Named so that the live ones sort first: C's answer starts with A's campaigns.
    live = [f"A{index:02d}" for index in range(LIVE_CAMPAIGNS)]
    ended = [f"E{index:04d}" for index in range(RELEASED_CAMPAIGNS)]
    batches = [f"B{n}" for n in range(5)]
    events: list[dict[str, Any]] = []
    for vdn_id in (LIVE_VDN, MIXED_VDN, ALL_LIVE_VDN):
        for name in live:
            events += campaign_events(vdn_id, name, batches, 10, moment_ms=moment)
    for vdn_id in (MIXED_VDN, ALL_LIVE_VDN):
        for name in ended:
            events += campaign_events(vdn_id, name, ["B0"], 2, moment_ms=moment)
    events += [
        {"eventType": "campaign.closed", "vdnId": MIXED_VDN, "campaignId": name,
         "occurredAt": moment}
        for name in ended
    ]  # fmt: skip
    context = CountingContext.from_settings(
        settings, layout=layout, retention_days=40, clock=clock, limits=NO_LIMITS
    )
    async with Redis.from_url(settings.redis_url) as redis:
        counter = EventCounter(redis, context)
        for start in range(0, len(events), 5000):
            await counter.count([event_from_json(e) for e in events[start : start + 5000]])
        clock.advance(context.policy.grace_seconds + 60)
        lifecycle = CampaignLifecycle(redis, context)
        while (await lifecycle.sweep()).steps:
            pass
        released = int(await redis.zcard(layout.vdn_released_campaigns(MIXED_VDN)))
    if released != RELEASED_CAMPAIGNS:
        raise RuntimeError(f"{released} campaigns released, not {RELEASED_CAMPAIGNS}")
    return released


# --- 2 -----------------------------------------------------------------------------------


def _ninety_days() -> str:
    with tempfile.TemporaryDirectory(prefix="isales-bench-days-") as directory:
        settings = Settings().model_copy(
            update={
                "redis_url": f"redis://127.0.0.1:{free_port()}/0",
                "stack_dir": Path(directory),
                "campaign_retention_days": SIMULATED_RETENTION_DAYS,
            }
        )
        redis_server = RedisServer(settings)
        redis_server.ensure_running()
        try:
            days, empty, breakdown = asyncio.run(
                simulate(settings, SHAPE, lambda day: print(day, flush=True))
            )
        finally:
            redis_server.stop()
    return _memory_report(days, empty, settings, breakdown)


def _memory_report(
    days: list[Day], empty: int, settings: Settings, breakdown: dict[str, tuple[int, int]]
) -> str:
    horizon = SHAPE.horizon_days(SIMULATED_RETENTION_DAYS)
    steady = [d for d in days if d.day >= horizon]
    used = [d.used_memory for d in steady]
    spread = (max(used) - min(used)) / min(used)
    per_record_all = statistics.median((d.used_memory - empty) / d.live_records for d in steady)
    per_record_data = statistics.median(d.dataset / d.live_records for d in steady)
    per_record_state = statistics.median(d.state / d.live_records for d in steady)
    verdict = "**met**" if spread <= FLAT_WITHIN else "**missed**"
    record_verdict = "**met**" if per_record_all <= RECORD_TARGET_BYTES else "**missed**"
    lines = [
        "## Memory over 90 days of steady traffic",
        "",
        f"Every simulated day {SHAPE.campaigns_per_day} campaigns of "
        f"{SHAPE.records_per_campaign:,} records ({SHAPE.batches} batches) are imported; each "
        f"record is dialled once a day for {SHAPE.dialling_days} days, its calls spread over the "
        f"minutes from {SHAPE.dialling_hours[0]}:00 to {SHAPE.dialling_hours[1]}:00, until an "
        f"attempt connects ({SHAPE.connected:.0%} do), and the campaign is closed after its "
        "last day. Lifecycle: the defaults (grace "
        f"{settings.campaign_release_grace_hours:g} h, daily counters "
        f"{settings.daily_retention_days} days) but a retention of {SIMULATED_RETENTION_DAYS} "
        f"days, so the horizon (day {horizon}: dialling, grace, retention, sweep) lies well "
        "inside the 90 days. One sweep each simulated evening; the keys whose expiry passed on "
        "the simulated clock unlinked by hand. A private Redis, empty at the start "
        f"(used_memory {empty / 2**20:.2f} MiB).",
        "",
        f"- After the horizon (days {horizon}-{SHAPE.days - 1}) `used_memory` moves between "
        f"{min(used) / 2**20:.2f} and {max(used) / 2**20:.2f} MiB: a spread of "
        f"**{spread:.1%}** of its low (target ≤ {FLAT_WITHIN:.0%}: {verdict}).",
        f"- Per live record (records of campaigns not yet released; median over those days): "
        f"**{per_record_all:.0f} B** of used_memory above the empty Redis (target ≤ "
        f"{RECORD_TARGET_BYTES} B: {record_verdict}); {per_record_data:.0f} B by MEMORY USAGE of "
        f"every key, of which {per_record_state:.0f} B is the idempotence state that a release "
        "frees (records, callIds, day records).",
        "",
        "On the last day, by kind (MEMORY USAGE; the units docs/capacity.md sizes with):",
        "",
        "| what | bytes | how many | bytes each |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {name} | {size:,} | {unit:,} | {size / max(unit, 1):,.0f} |"
            for name, (size, unit) in breakdown.items()
        ],
        "",
        "| day | events | live records | used_memory MiB | dataset MiB | state MiB | keys | "
        "released (all) | deleted (all) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for d in days:
        lines.append(
            f"| {d.day} | {d.events:,} | {d.live_records:,} | {d.used_memory / 2**20:.2f} | "
            f"{d.dataset / 2**20:.2f} | {d.state / 2**20:.2f} | {d.keys:,} | {d.released} | "
            f"{d.deleted} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
