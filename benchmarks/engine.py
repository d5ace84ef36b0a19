"""Engine benchmark: worker throughput, freshness, and Redis memory.

Throughput of one worker process, end to end: events are produced to Kafka beforehand, then a
worker is started; the clock runs from the first event counted until the counters are complete
(the start-up time is reported beside it). Measured in the same run:
- the ceiling: a bare aiokafka consumer that only reads and decodes;
- the naive baseline: a plain Faust agent doing one Redis round trip per event;
- for context, a Faust agent on the default transport that does nothing at all.
Freshness: a steady 5,000 events/s from the SDK publisher; for every 50th event, the time from
``publish`` until its record is visible in Redis. Memory: MEMORY USAGE of each kind of key
after counting a realistic stream.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiokafka
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from isales_stats.commands.stack import Stack
from isales_stats.core.events import decode_event
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.counting import EventCounter
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.publisher import EventPublisher
from tests.conftest import delete_keys, delete_topics
from tests.workload import campaign_stream, distinct_identities_counted, encoded, publish

EVENTS = 300_000
NAIVE_EVENTS = 30_000
CAMPAIGNS = 20
RUNS = 3
FRESHNESS_RATE = 5_000
FRESHNESS_SECONDS = 30


def run() -> str:
    base = Settings()
    report = Stack(base).up()
    used: list[Settings] = []
    try:
        return _run(base, used)
    finally:
        _clean_up(base, used)
        Stack(base).down(only=report.started)


def _clean_up(base: Settings, used: list[Settings]) -> None:
    """Delete the runs' keys and topics: hundreds of MB that would slow every later benchmark."""
    for settings in used:
        delete_keys(base.redis_url, settings.key_prefix)
    delete_topics(base, [name for s in used for name in (s.call_events_topic, s.dead_letter_topic)])


def _run(base: Settings, used: list[Settings]) -> str:
    def fresh() -> Settings:
        """Settings of one run: its own topics, keys and group, remembered for the clean-up."""
        settings = _fresh_settings(base)
        used.append(settings)
        return settings

    stream = campaign_stream(EVENTS, campaigns=CAMPAIGNS, batches=5, seed=5)
    settings = fresh()
    publish(settings, stream)
    identities = _identities(stream)

    ceiling = [_bare_consumer_rate(settings, len(stream)) for _ in range(RUNS)]
    ours = [
        _worker_rate(settings, ["-m", "isales_stats", "worker"], len(stream), identities)
        for _ in range(RUNS)
    ]

    naive_stream = stream[:NAIVE_EVENTS]
    naive_settings = fresh()
    publish(naive_settings, naive_stream)
    naive = [
        _worker_rate(
            naive_settings,
            ["-m", "benchmarks.naive_worker"],
            len(naive_stream),
            _identities(naive_stream),
        )
        for _ in range(2)
    ]
    no_op = _no_op_rate(settings, len(stream))

    freshness = _freshness(fresh())
    memory = _memory(fresh())

    ours_rate = statistics.median(rate for rate, _ in ours)
    naive_rate = statistics.median(rate for rate, _ in naive)
    ceiling_rate = statistics.median(ceiling)
    lines = [
        "## Engine: one worker process",
        "",
        f"{EVENTS:,} events ({CAMPAIGNS} campaigns, 5 batches, 2% upstream duplicates) produced "
        "to a 12-partition topic beforehand; rates are events/s from the first event counted to "
        f"the last (median of {RUNS} runs; the naive baseline: {NAIVE_EVENTS:,} events, 2 runs).",
        "",
        "| consumer | events/s (median) | runs | start-up s | vs our worker |",
        "| --- | ---: | --- | ---: | ---: |",
        _row(
            "isales-stats worker (batch delivery, one Lua call per campaign per fetch)",
            ours,
            ours_rate,
        ),
        _row("naive baseline: Faust agent, one Redis round trip per event", naive, ours_rate),
        _row("Faust agent on the default transport doing nothing (context)", [no_op], ours_rate),
        f"| ceiling: bare aiokafka consumer, read + decode only | {ceiling_rate:,.0f} | "
        f"{', '.join(f'{r:,.0f}' for r in ceiling)} | - | {ceiling_rate / ours_rate:.2f}x |",
        "",
        f"Our worker: **{ours_rate:,.0f} events/s** (target >= 30,000), "
        f"{ours_rate / naive_rate:.1f}x the naive baseline, "
        f"{ours_rate / ceiling_rate:.0%} of the read-and-decode ceiling.",
        "",
        f"### Freshness at a steady {FRESHNESS_RATE:,} events/s",
        "",
        f"{freshness['sent']:,} events in {FRESHNESS_SECONDS} s (achieved "
        f"{freshness['rate']:,.0f}/s); {freshness['samples']:,} sampled from `publish()` to "
        "visible in Redis:",
        "",
        "| p50 | p90 | p99 | max |",
        "| ---: | ---: | ---: | ---: |",
        "| " + " | ".join(f"{freshness[q]:.0f} ms" for q in ("p50", "p90", "p99", "max")) + " |",
        "",
        "Target: p99 <= 500 ms.",
        "",
        "### Redis memory",
        "",
        f"After counting {memory['events']:,} events of {memory['records']:,} records "
        f"({memory['calls']:,} calls) in {memory['campaigns']} campaigns of "
        f"{memory['batches']} batches, over {memory['days']} days (MEMORY USAGE, exact):",
        "",
        "| what | bytes |",
        "| --- | ---: |",
        f"| per record, kept while the campaign lives (its state) | {memory['per_record']:.0f} |",
        f"| per call, kept while the campaign lives (callId for duplicates) | "
        f"{memory['per_call']:.0f} |",
        f"| per record and day it was active, kept for the retention | "
        f"{memory['per_record_day']:.0f} |",
        f"| per campaign-day: counter hashes and packed rows of the campaign and its batches | "
        f"{memory['per_campaign_day']:.0f} |",
        f"| per campaign: totals, batches index, batch totals and packed rows | "
        f"{memory['per_campaign']:.0f} |",
        f"| in all, per record (everything above / records) | {memory['all_per_record']:.0f} |",
    ]
    return "\n".join(lines)


def _row(name: str, runs: list[tuple[float, float]], reference: float) -> str:
    rate = statistics.median(r for r, _ in runs)
    startup = statistics.median(s for _, s in runs)
    return (
        f"| {name} | {rate:,.0f} | {', '.join(f'{r:,.0f}' for r, _ in runs)} | "
        f"{startup:.1f} | {rate / reference:.2f}x |"
    )


def _fresh_settings(base: Settings) -> Settings:
    tag = f"bench{uuid.uuid4().hex[:8]}"
    return base.model_copy(
        update={
            "call_events_topic": f"{tag}.call-events",
            "dead_letter_topic": f"{tag}.dead-letter",
            "key_prefix": f"bench:{tag}",
            "worker_group": f"{tag}-group",
            "worker_metrics_port": 0,
        }
    )


def _identities(stream: list[dict[str, Any]]) -> int:
    records = {(e["campaignId"], e["dataId"]) for e in stream}
    calls = {(e["campaignId"], e["callId"]) for e in stream if "callId" in e}
    return len(records) + len(calls)


def _worker_rate(
    settings: Settings, command: list[str], events: int, expected: int
) -> tuple[float, float]:
    """(events/s from first counted to complete, seconds from launch to first counted)."""
    run_settings = settings.model_copy(
        update={"key_prefix": f"{settings.key_prefix}:{uuid.uuid4().hex[:6]}",
                "worker_group": f"{settings.worker_group}-{uuid.uuid4().hex[:6]}"}
    )  # fmt: skip
    campaigns = [f"camp-{n:03d}" for n in range(CAMPAIGNS)]

    def counted() -> int:
        return distinct_identities_counted(run_settings, campaigns)

    environment = {**os.environ, **run_settings.as_environment()}
    launched = time.monotonic()
    worker = subprocess.Popen(
        [sys.executable, *command], env=environment,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        first = None
        while True:
            progress = counted()
            now = time.monotonic()
            if progress and first is None:
                first = (now, progress)
            if progress >= expected:
                break
            if now - launched > 600:
                raise TimeoutError(f"{command} did not finish: {progress}/{expected}")
            time.sleep(0.05)
        assert first is not None
        share_left = 1 - first[1] / expected
        return events * share_left / max(now - first[0], 1e-3), first[0] - launched
    finally:
        worker.terminate()
        worker.wait(30)


def _no_op_rate(settings: Settings, events: int) -> tuple[float, float]:
    run_settings = settings.model_copy(
        update={"key_prefix": f"{settings.key_prefix}:noop{uuid.uuid4().hex[:6]}",
                "worker_group": f"{settings.worker_group}-noop{uuid.uuid4().hex[:6]}"}
    )  # fmt: skip
    redis = Redis.from_url(run_settings.redis_url)
    environment = {**os.environ, **run_settings.as_environment()}
    launched = time.monotonic()
    worker = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.naive_worker", "--no-op"], env=environment,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        first = None
        while True:
            seen = int(redis.get(f"{run_settings.key_prefix}:noop") or 0)
            now = time.monotonic()
            if seen and first is None:
                first = (now, seen)
            if seen >= events - events % 1000:
                break
            time.sleep(0.05)
        assert first is not None
        return (seen - first[1]) / (now - first[0]), first[0] - launched
    finally:
        worker.terminate()
        worker.wait(30)


def _bare_consumer_rate(settings: Settings, events: int) -> float:
    async def consume() -> float:
        consumer = aiokafka.AIOKafkaConsumer(
            settings.call_events_topic,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=f"bare-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            seen, began = 0, None
            while seen < events:
                fetched = await consumer.getmany(timeout_ms=1000, max_records=2000)
                if began is None and fetched:
                    began = time.monotonic()
                for messages in fetched.values():
                    for message in messages:
                        decode_event(message.value)
                        seen += 1
            assert began is not None
            return events / (time.monotonic() - began)
        finally:
            await consumer.stop()

    return asyncio.run(consume())


def _freshness(settings: Settings) -> dict[str, float]:
    ensure_topics(settings)
    layout = KeyLayout(settings.key_prefix)
    environment = {**os.environ, **settings.as_environment()}
    worker = subprocess.Popen(
        [sys.executable, "-m", "isales_stats", "worker"], env=environment,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    pending: dict[tuple[str, str], float] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def watch() -> None:
        redis = Redis.from_url(settings.redis_url)
        while not done.is_set() or pending:
            with lock:
                waiting = list(pending.items())
            if waiting:
                with redis.pipeline(transaction=False) as pipe:
                    for (campaign, data_id), _ in waiting:
                        pipe.hexists(layout.campaign_records(1, campaign), data_id)
                    visible = pipe.execute()
                now = time.perf_counter()
                with lock:
                    for (key, sent), seen in zip(waiting, visible, strict=True):
                        if seen:
                            latencies.append((now - sent) * 1000)
                            del pending[key]
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        _wait_until_consuming(settings, worker)
        watcher.start()
        sent = 0
        began = time.perf_counter()
        with EventPublisher(settings) as publisher:
            while (elapsed := time.perf_counter() - began) < FRESHNESS_SECONDS:
                due = int(elapsed * FRESHNESS_RATE)
                now_ms = int(datetime.now(UTC).timestamp() * 1000)
                while sent < due:
                    campaign = f"camp-{sent % CAMPAIGNS:03d}"
                    data_id = f"fresh-{sent}"
                    publisher.publish(
                        {"eventType": "data.added", "vdnId": 1, "campaignId": campaign,
                         "dataId": data_id, "batchId": f"batch-{sent % 5}", "occurredAt": now_ms}
                    )  # fmt: skip
                    if sent % 50 == 0:
                        with lock:
                            pending[(campaign, data_id)] = time.perf_counter()
                    sent += 1
                time.sleep(0.002)
            achieved = sent / (time.perf_counter() - began)
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            time.sleep(0.05)
        done.set()
        watcher.join(5)
    finally:
        worker.terminate()
        worker.wait(30)
    ordered = sorted(latencies)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "sent": sent, "rate": achieved, "samples": len(ordered), "p50": quantile(0.5),
        "p90": quantile(0.9), "p99": quantile(0.99), "max": ordered[-1],
    }  # fmt: skip


def _wait_until_consuming(settings: Settings, worker: subprocess.Popen[bytes]) -> None:
    """Publish a probe until the worker counts it: the worker is then assigned and running."""
    layout = KeyLayout(settings.key_prefix)
    redis = Redis.from_url(settings.redis_url)
    with EventPublisher(settings) as publisher:
        publisher.publish({"eventType": "data.added", "vdnId": 1, "campaignId": "probe",
                           "dataId": "probe", "occurredAt": int(time.time() * 1000)})  # fmt: skip
    deadline = time.monotonic() + 60
    while not redis.hexists(layout.campaign_records(1, "probe"), "probe"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the worker did not start consuming")
        time.sleep(0.05)


def _memory(settings: Settings) -> dict[str, Any]:
    stream = campaign_stream(100_000, campaigns=CAMPAIGNS, batches=5, seed=9)
    layout = KeyLayout(settings.key_prefix)

    async def count() -> None:
        async with AsyncRedis.from_url(settings.redis_url) as redis:
            counter = EventCounter(redis, layout, settings.time_zone_of, 40)
            for start in range(0, len(stream), 2000):
                events = [decode_event(value) for _, value in encoded(stream[start : start + 2000])]
                await counter.count(events)

    asyncio.run(count())
    redis = Redis.from_url(settings.redis_url)
    sizes: dict[str, int] = {}
    for key in redis.scan_iter(match=f"{settings.key_prefix}:*", count=1000):
        name = key.decode()
        kind = name.rsplit("}", 1)[1] if "}" in name else "vdn-index"
        if kind.endswith(":records") and ":day:" in kind:
            kind = "day-records"
        elif kind.startswith(":batch:"):
            kind = "batch-day" if ":day:" in kind else "batch-totals"
        elif kind.startswith(":day:"):
            kind = "day"
        sizes[kind] = sizes.get(kind, 0) + int(redis.memory_usage(key, samples=0) or 0)
        sizes["all"] = sizes.get("all", 0) + int(redis.memory_usage(key, samples=0) or 0)
    records = len({(e["campaignId"], e["dataId"]) for e in stream})
    calls = len({(e["campaignId"], e["callId"]) for e in stream if "callId" in e})
    zone = settings.time_zone_of(1)
    days = {datetime.fromtimestamp(e["occurredAt"] / 1000, zone).date() for e in stream}
    record_days = len({(e["campaignId"], e["dataId"],
                        datetime.fromtimestamp(e["occurredAt"] / 1000, zone).date())
                       for e in stream if e["eventType"] != "data.removed"})  # fmt: skip
    campaign_days = CAMPAIGNS * len(days)
    return {
        "events": len(stream), "records": records, "calls": calls, "campaigns": CAMPAIGNS,
        "batches": 5, "days": len(days),
        "per_record": sizes[":records"] / records,
        "per_call": sizes[":calls"] / calls,
        "per_record_day": sizes["day-records"] / record_days,
        "per_campaign_day": (sizes["day"] + sizes["batch-day"]) / campaign_days,
        "per_campaign": (sizes[":totals"] + sizes[":batches"] + sizes["batch-totals"]
                         + sizes[":rows"]) / CAMPAIGNS,
        "all_per_record": sizes["all"] / records,
    }  # fmt: skip


if __name__ == "__main__":
    print(run())
