"""Benchmark of push: 1,000 subscribers of one API process while counting goes at 5,000 events/s.

    python -m benchmarks.run push

Three processes besides Redis, so that none measures the others' work: one ``isales-stats api``
(one uvicorn worker, push at its defaults but the per-key cap, which 1,000 unsigned subscribers
from one address would hit); a counting process, the engine's ``EventCounter`` run as a worker
runs it, a batch every 200 ms of 1,000 events over 200 campaigns (100 VDNs of 2); and a
subscriber process, ``SUBSCRIBERS`` raw asyncio connections, 10 per VDN, that note for every
event the time from its change's id (Redis' clock when counting wrote it, on this same machine)
to its arrival.

Rows, in one run: one subscriber while counting (the latency's baseline: counting, Pub/Sub,
the hub's read and pacing, one send); the 1,000 while counting; the 1,000 while nothing changes
(their cost at rest: heartbeats). API CPU is user+system seconds of the API process over the
measured window (/proc), memory its resident set over the one before the subscribers came.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.api import api_bench_ground, api_server
from isales_stats.core.interface import STREAM_PATH
from isales_stats.core.settings import Settings

VDNS, CAMPAIGNS_PER_VDN = 100, 2
SUBSCRIBERS, PER_VDN = 1000, 10
EVENTS_PER_SECOND = 5000
ROUND_SECONDS = 0.2
WARM_UP_SECONDS, MEASURE_SECONDS = 5, 20
TARGET_P99_MS = 500.0


def run() -> str:
    with api_bench_ground("push") as (settings, workdir):
        settings = settings.model_copy(
            update={"push_max_subscribers_per_key": 0, "access_log": False}
        )
        with api_server(settings, _free_port(), workdir) as base:
            api_pid = _pid_listening(base)
            one = _measure(settings, base, api_pid, workdir, subscribers=1, counting=True)
            # At rest first: the memory a subscriber holds (the resident set does not shrink
            # back between runs), then what counting adds.
            idle = _measure(settings, base, api_pid, workdir, SUBSCRIBERS, counting=False)
            many = _measure(settings, base, api_pid, workdir, SUBSCRIBERS, counting=True)
        every = settings.model_copy(update={"push_max_events_per_second": 0.0})
        with api_server(every, _free_port(), workdir) as base:
            unpaced = _measure(every, base, _pid_listening(base), workdir, SUBSCRIBERS, True)
    return _report(settings, one, many, idle, unpaced)


def _measure(
    settings: Settings,
    base: str,
    api_pid: int,
    workdir: Path,
    subscribers: int,
    counting: bool,
) -> dict[str, Any]:
    result_file = workdir / f"subscribers-{subscribers}-{counting}.json"
    rss_before = _rss_kib(api_pid)
    environment = {**os.environ, "ISALES_KEY_PREFIX": settings.key_prefix}
    listening = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.push", "subscribe", base, str(subscribers),
         str(WARM_UP_SECONDS), str(MEASURE_SECONDS), str(result_file)],
        env=environment,
    )  # fmt: skip
    feeding = None
    if counting:
        feeding = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.push", "count",
             str(WARM_UP_SECONDS + MEASURE_SECONDS + 2)],
            env=environment,
        )  # fmt: skip
    time.sleep(WARM_UP_SECONDS)
    cpu_before, started = _cpu_seconds(api_pid), time.monotonic()
    time.sleep(MEASURE_SECONDS)
    cpu = _cpu_seconds(api_pid) - cpu_before
    elapsed = time.monotonic() - started
    rss_during = _rss_kib(api_pid)
    assert listening.wait(60) == 0, "the subscribers' process failed"
    if feeding is not None:
        assert feeding.wait(60) == 0, "the counting process failed"
    found: dict[str, Any] = json.loads(result_file.read_text())
    found.update(
        subscribers=subscribers,
        api_cpu_per_second=cpu / elapsed,
        rss_added_kib=rss_during - rss_before,
    )
    print(f"  {subscribers} subscribers, counting={counting}: {found}", flush=True)
    time.sleep(2)  # the subscribers' connections are gone from the API
    return found


def _report(
    settings: Settings,
    one: dict[str, Any],
    many: dict[str, Any],
    idle: dict[str, Any],
    unpaced: dict[str, Any],
) -> str:
    def row(name: str, found: dict[str, Any]) -> str:
        p50 = f"{found['p50_ms']:.0f}" if found.get("p50_ms") is not None else "-"
        p99 = f"{found['p99_ms']:.0f}" if found.get("p99_ms") is not None else "-"
        return (
            f"| {name} | {found['events_per_second']:,.0f} | {p50} | {p99} | "
            f"{found['api_cpu_per_second']:.2f} | {found['rss_added_kib'] / 1024:.1f} MiB |"
        )

    def per_event_us(found: dict[str, Any]) -> float:
        sent = found["events_per_second"]
        return float(found["api_cpu_per_second"] / sent * 1e6) if sent else 0.0

    ratio = many["p99_ms"] / one["p99_ms"]
    verdict = "met" if many["p99_ms"] <= TARGET_P99_MS else "missed"
    interval_ms = 1000 / settings.push_max_events_per_second
    return "\n".join(
        [
            "## Push (Server-Sent Events)",
            "",
            f"{SUBSCRIBERS} subscribers ({PER_VDN} per VDN, {VDNS} VDNs of {CAMPAIGNS_PER_VDN} "
            f"campaigns) on one API process while counting goes at {EVENTS_PER_SECOND:,} "
            f"events/s (a batch every {ROUND_SECONDS * 1000:.0f} ms: each campaign changes "
            f"{1 / ROUND_SECONDS:.0f} times a second), pacing at its default "
            f"({settings.push_max_events_per_second:g} events per campaign and second) unless "
            "said. Latency: from the change's id (Redis' clock when the counting script "
            "recorded it) to the event's arrival at the subscriber, over "
            f"{MEASURE_SECONDS} s after {WARM_UP_SECONDS} s of warm-up. API CPU: user+system "
            "seconds of the API process per second; memory: its resident set added by the run.",
            "",
            "| run | events received/s | p50 ms | p99 ms | API CPU (cores) | API memory added |",
            "|---|---:|---:|---:|---:|---:|",
            row("1 subscriber, counting (baseline)", one),
            row(f"{SUBSCRIBERS} subscribers, nothing changes (heartbeats only)", idle),
            row(f"{SUBSCRIBERS} subscribers, counting", many),
            row(f"{SUBSCRIBERS} subscribers, counting, every change (pacing off)", unpaced),
            "",
            f"- p99 with {SUBSCRIBERS} subscribers: {ratio:.1f}x the one subscriber's, "
            f"**{verdict}** against {TARGET_P99_MS:.0f} ms; pacing alone holds a change back "
            f"up to {interval_ms:.0f} ms, which the unpaced row leaves out.",
            f"- Per subscriber: {idle['rss_added_kib'] / SUBSCRIBERS:.0f} KiB of API memory at "
            f"rest; {many['api_cpu_per_second'] / SUBSCRIBERS * 1000:.2f} ms of API CPU per "
            f"second while counting ({per_event_us(many):.0f} µs per event sent; "
            f"{per_event_us(unpaced):.0f} µs unpaced), "
            f"{idle['api_cpu_per_second'] / SUBSCRIBERS * 1000:.3f} ms at rest.",
        ]
    )


# --- the processes -----------------------------------------------------------------------------


def _campaigns() -> list[tuple[int, str]]:
    return [
        (vdn, f"P{campaign}") for vdn in range(1, VDNS + 1) for campaign in range(CAMPAIGNS_PER_VDN)
    ]


async def _count(seconds: float) -> None:
    """Count EVENTS_PER_SECOND, as a worker does: a batch of every campaign's calls per round."""
    from redis.asyncio import Redis

    from isales_stats.core.events import event_from_json
    from isales_stats.engine.context import CountingContext
    from isales_stats.engine.counting import NO_LIMITS, EventCounter

    settings = Settings()
    redis = Redis.from_url(settings.redis_url)
    context = CountingContext.from_settings(settings, retention_days=40, limits=NO_LIMITS)
    counter = EventCounter(redis, context)
    campaigns = _campaigns()
    per_round = int(EVENTS_PER_SECOND * ROUND_SECONDS)
    run = f"{os.getpid()}-{time.time_ns()}"  # ids of this run: another's would be duplicates
    number, deadline = 0, time.monotonic() + seconds
    next_round = time.monotonic()
    while time.monotonic() < deadline:
        moment = int(time.time() * 1000)
        events = []
        for index in range(per_round):
            vdn, campaign = campaigns[index % len(campaigns)]
            number += 1
            events.append(event_from_json(
                {"eventType": "call.result", "vdnId": vdn, "campaignId": campaign,
                 "dataId": f"r{run}-{number}", "callId": f"c{run}-{number}", "occurredAt": moment,
                 "callStatus": 6 if number % 3 else 5, "final": number % 2 == 0}
            ))  # fmt: skip
        await counter.count(events)
        next_round += ROUND_SECONDS
        await asyncio.sleep(max(0.0, next_round - time.monotonic()))
    await redis.aclose()


async def _subscribe(
    base: str, subscribers: int, warm_up: float, measure: float
) -> dict[str, float | None]:
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    received = 0
    measuring = False
    vdns = [vdn for vdn in range(1, VDNS + 1) for _ in range(PER_VDN)][:subscribers]

    async def one(vdn: int) -> None:
        nonlocal received
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
        path = STREAM_PATH.format(vdn_id=vdn)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        marker = b'"changeId":"'
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                start = line.find(marker)
                if start < 0 or not measuring:
                    continue
                end = line.index(b"-", start)
                written_ms = int(line[start + len(marker) : end])
                latencies.append(time.time() * 1000 - written_ms)
                received += 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(one(vdn)) for vdn in vdns]
    await asyncio.sleep(warm_up)
    measuring = True
    await asyncio.sleep(measure)
    measuring = False
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    return {
        "events_per_second": received / measure,
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


# --- /proc ------------------------------------------------------------------------------------


def _pid_listening(base: str) -> int:
    """The API process: the child of the benchmark whose command line serves ``base``'s port."""
    port = base.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"api" in command and port.encode() in command:
                return int(entry.name)
    raise RuntimeError(f"no API process serves port {port}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _free_port() -> int:
    from tests.support.ports import free_port

    return free_port()


if __name__ == "__main__":
    if sys.argv[1] == "count":
        asyncio.run(_count(float(sys.argv[2])))
    else:
        base, subscribers, warm_up, measure, out = sys.argv[2:7]
        found = asyncio.run(_subscribe(base, int(subscribers), float(warm_up), float(measure)))
        Path(out).write_text(json.dumps(found))
