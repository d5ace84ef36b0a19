"""Engine benchmark: worker throughput, what Redis writes for it, freshness, and memory.

Throughput of one worker process, end to end: events are produced to Kafka beforehand, then a
worker is started; the clock runs from the first event counted until the counters are complete
(the start-up time is reported beside it). Measured in the same run:
- the ceiling: a bare aiokafka consumer that only reads and decodes;
- the naive baseline: a plain Faust agent doing one Redis round trip per event;
- for context, a Faust agent on the default transport that does nothing at all.
Writes: the worker counts into a Redis of its own, configured as the local stack's
(REDIS_PERSISTENCE), so that its append-only file holds our writes only: AOF bytes per event
and AOF rewrites per minute beside each rate, and in one more run a replica attached, whose
replication stream is measured too. The worker's CPU-seconds per million events come from
/proc (user + system), steadier than wall time on a shared machine.
Capacity and freshness: capacity is what one worker counts while this process publishes as
fast as the SDK can, both on the same two cores; then freshness at 30 %, 50 % and 70 % of that
capacity, for every 50th event the time from ``publish`` until its record is visible in Redis,
beside the worker's batches (events per batch, Redis time per batch) and the AOF's growth.
Memory: MEMORY USAGE of each kind of key after counting a realistic stream.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiokafka
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from isales_stats.commands import cli_command
from isales_stats.commands.stack import Stack
from isales_stats.commands.stack.kafka import KafkaBroker
from isales_stats.commands.stack.redis import RedisServer
from isales_stats.core.events import decode_event
from isales_stats.core.kafka_connection import client_options
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.context import CountingContext
from isales_stats.engine.counting import NO_LIMITS, EventCounter
from isales_stats.engine.topics import ensure_topics
from isales_stats.producing.publisher import EventPublisher
from tests.support.aof import aof_mark, bytes_by_write, read_writes
from tests.support.cleanup import delete_topics
from tests.support.detail import distinct_identities_counted
from tests.support.faults import scrape_metric
from tests.support.freshness import FreshnessWatcher
from tests.support.kafka_topics import publish
from tests.support.ports import free_port
from tests.support.state import records_known, state_sizes
from tests.support.streams import campaign_stream, encoded

EVENTS = 300_000
NAIVE_EVENTS = 30_000
CAMPAIGNS = 20
RUNS = 3
FRESHNESS_SECONDS = 30
LOAD_FRACTIONS = (0.3, 0.5, 0.7)
CAPACITY_EVENTS = 150_000


def run() -> str:
    dev = Settings()
    report = Stack(dev).up()
    with tempfile.TemporaryDirectory(prefix="isales-bench-") as directory:
        base = dev.model_copy(
            update={
                "redis_url": f"redis://127.0.0.1:{free_port()}/0",
                "stack_dir": Path(directory),
            }
        )
        redis_server = RedisServer(base)
        redis_server.ensure_running()
        used: list[Settings] = []
        try:
            return _run(base, used)
        finally:
            _clean_up(base, used)
            redis_server.stop()
            Stack(dev).down(only=report.started)


def _clean_up(base: Settings, used: list[Settings]) -> None:
    """Delete the runs' topics (the private Redis goes with its temporary directory)."""
    delete_topics(base, [name for s in used for name in (s.call_events_topic, s.dead_letter_topic)])


def _empty_redis(settings: Settings) -> None:
    """Each measured run starts on an empty Redis under the production key prefix: its keys,
    and so its AOF bytes, are those a deployment writes (a longer prefix per run would add
    its length to every command)."""
    with Redis.from_url(settings.redis_url) as redis:
        redis.flushall()


def _run(base: Settings, used: list[Settings]) -> str:
    def fresh() -> Settings:
        """Settings of one run: its own topics and group, remembered for the clean-up."""
        settings = _fresh_settings(base)
        used.append(settings)
        return settings

    stream = campaign_stream(EVENTS, campaigns=CAMPAIGNS, batches=5, seed=5)
    settings = fresh()
    kafka_pid = _stack_pids(settings)["Kafka"]
    kafka_before, producer_before = cpu_seconds(kafka_pid), time.process_time()
    publish(settings, stream)
    produced = {
        "Kafka, taking the events in": cpu_seconds(kafka_pid) - kafka_before,
        "the producer (this process: kafka-python, acks=all)": time.process_time()
        - producer_before,
    }
    identities = _identities(stream)

    ceiling = [_bare_consumer_rate(settings, len(stream)) for _ in range(RUNS)]
    ours = [
        _worker_rate(settings, cli_command("worker"), len(stream), identities) for _ in range(RUNS)
    ]

    naive_stream = stream[:NAIVE_EVENTS]
    naive_settings = fresh()
    publish(naive_settings, naive_stream)
    naive = [
        _worker_rate(
            naive_settings,
            [sys.executable, "-m", "benchmarks.naive_worker"],
            len(naive_stream),
            _identities(naive_stream),
        )
        for _ in range(2)
    ]
    no_op = _no_op_rate(settings, len(stream))

    with Replica(base) as replica:
        replicated = _worker_rate(settings, cli_command("worker"), len(stream), identities)
        replica_lag = replica.lag_bytes()

    capacity = _capacity(fresh())
    loads = [(fraction, _freshness(fresh(), fraction * capacity)) for fraction in LOAD_FRACTIONS]
    memory = _memory(fresh())

    ours_rate = statistics.median(run.rate for run in ours)
    naive_rate = statistics.median(run.rate for run in naive)
    ceiling_rate = statistics.median(ceiling)
    lines = [
        "## Engine: one worker process",
        "",
        f"{EVENTS:,} events ({CAMPAIGNS} campaigns, 5 batches, 2% upstream duplicates) produced "
        "to a 12-partition topic beforehand; rates are events/s from the first event counted to "
        f"the last (median of {RUNS} runs; the naive baseline: {NAIVE_EVENTS:,} events, 2 runs). "
        "Redis is a private one with the local stack's persistence (REDIS_PERSISTENCE): AOF "
        "bytes are our writes only; CPU is the worker process' user + system time.",
        "",
        "| consumer | events/s (median) | runs | start-up s | vs our worker "
        "| AOF B/event | AOF rewrites/min | worker CPU-s per 1M events |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        _row(
            "isales-stats worker (batch delivery, one Lua call per campaign per fetch)",
            ours,
            ours_rate,
        ),
        _row("naive baseline: Faust agent, one Redis round trip per event", naive, ours_rate),
        f"| Faust agent on the default transport doing nothing (context) | {no_op[0]:,.0f} | "
        f"{no_op[0]:,.0f} | {no_op[1]:.1f} | {no_op[0] / ours_rate:.2f}x | - | - | - |",
        f"| ceiling: bare aiokafka consumer, read + decode only | {ceiling_rate:,.0f} | "
        f"{', '.join(f'{r:,.0f}' for r in ceiling)} | - | {ceiling_rate / ours_rate:.2f}x "
        "| - | - | - |",
        "",
        f"Our worker: **{ours_rate:,.0f} events/s** (target >= 30,000), "
        f"{ours_rate / naive_rate:.1f}x the naive baseline, "
        f"{ours_rate / ceiling_rate:.0%} of the read-and-decode ceiling; "
        f"**{statistics.median(run.aof_per_event for run in ours):.0f} AOF bytes per event** "
        "(target <= 200).",
        "",
        f"With a replica attached (one more run, {replicated.rate:,.0f} events/s): "
        f"AOF {replicated.aof_per_event:.0f} B/event, replication stream "
        f"{replicated.replication_bytes / replicated.events:.0f} B/event, the replica "
        f"{replica_lag:,} bytes behind at the end.",
        "",
        *_cpu_table(ours, produced, len(stream)),
        "### Freshness at fractions of capacity",
        "",
        f"Capacity, measured in this run: **{capacity:,.0f} events/s**, one worker counting while "
        "this process publishes as fast as the SDK can (both on the same two cores). Then "
        f"{FRESHNESS_SECONDS} s at each fraction of it; every 50th event timed from `publish()` "
        "to visible in Redis. Batches: what the worker's metrics say of the same seconds.",
        "",
        "| load | events/s | samples | p50 | p90 | p99 | max | batches/s | events/batch "
        "| Redis ms/batch | AOF B/event | AOF rewrites/min | worker CPU-s per 1M events |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
        *[
            f"| {fraction:.0%} | {f['rate']:,.0f} | {f['samples']:,} | {f['p50']:.0f} ms "
            f"| {f['p90']:.0f} ms | {f['p99']:.0f} ms | {f['max']:.0f} ms "
            f"| {f['batches_per_second']:.0f} | {f['events_per_batch']:.1f} "
            f"| {f['batch_ms']:.2f} | {f['aof_per_event']:.0f} | {f['rewrites_per_minute']:.1f} "
            f"| {f['cpu_per_million']:.1f} |"
            for fraction, f in loads
        ],
        "",
        "Target: p99 <= 250 ms at 50 % of capacity.",
        "",
        "Where the two cores went in those seconds (CPU time of each process / wall time; the "
        "rest of the machine, the shared VM's other tenants included, is not listed):",
        "",
        "| load | " + " | ".join(loads[0][1]["cores"]) + " | sum |",
        "| ---: |" + " ---: |" * (len(loads[0][1]["cores"]) + 1),
        *[
            f"| {fraction:.0%} | "
            + " | ".join(f"{value:.2f}" for value in f["cores"].values())
            + f" | {sum(f['cores'].values()):.2f} |"
            for fraction, f in loads
        ],
        "",
        *_bytes_table(loads),
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


def _cpu_table(runs: list[WorkerRun], produced: dict[str, float], events: int) -> list[str]:
    """CPU-seconds per million events of each process on the way (docs/capacity.md's input)."""
    per_million = 1_000_000 / events
    rows = [("the worker", statistics.median(run.cpu_per_million for run in runs))]
    for name in runs[0].service_cpu_seconds:
        label = "Kafka, serving the worker's fetches" if name == "Kafka" else name
        rows.append((label, statistics.median(
            run.service_cpu_seconds[name] * 1_000_000 / run.events for run in runs
        )))  # fmt: skip
    rows += [(name, seconds * per_million) for name, seconds in produced.items()]
    return [
        "CPU-seconds per million events of each process, from /proc (user + system): the "
        "worker, Redis and the broker during our worker's runs (medians), the broker and the "
        "producer while the stream was published (one publication, `acks=all`). "
        "[docs/capacity.md](capacity.md) sizes deployments from these.",
        "",
        "| process | CPU-s per 1M events |",
        "| --- | ---: |",
        *[f"| {name} | {value:.1f} |" for name, value in rows],
        "",
    ]


def _bytes_table(loads: list[tuple[float, dict[str, Any]]]) -> list[str]:
    """Where the AOF bytes of each load went, by command and key (read back from the AOF)."""
    roles = sorted(
        {role for _, load in loads for role in load["by_write"]},
        key=lambda role: -max(load["by_write"].get(role, (0, 0))[1] for _, load in loads),
    )
    header = " | ".join(f"{fraction:.0%}: per 1k events / B per event" for fraction, _ in loads)
    rows = [
        "#### Where the AOF bytes go",
        "",
        "Every write the worker's scripts made in those runs, read back from the append-only "
        "file and grouped by command and key (D a day, B a batch). The events are "
        "`data.added`: a record state and a day flag each; the rest is per script call (one "
        "per campaign per fetch), so it shrinks per event as fetches grow with the load.",
        "",
        f"| write | {header} |",
        "| --- |" + " ---: |" * len(loads),
    ]
    for role in roles:
        cells = []
        for _, load in loads:
            count, size = load["by_write"].get(role, (0, 0))
            cells.append(f"{count * 1000 / load['sent']:,.0f} / {size / load['sent']:.1f}")
        rows.append(f"| `{role}` | " + " | ".join(cells) + " |")
    rows.append("")
    return rows


def _row(name: str, runs: list[WorkerRun], reference: float) -> str:
    rate = statistics.median(run.rate for run in runs)
    return (
        f"| {name} | {rate:,.0f} | {', '.join(f'{run.rate:,.0f}' for run in runs)} | "
        f"{statistics.median(run.startup for run in runs):.1f} | {rate / reference:.2f}x "
        f"| {statistics.median(run.aof_per_event for run in runs):.0f} "
        f"| {statistics.median(run.rewrites_per_minute for run in runs):.1f} "
        f"| {statistics.median(run.cpu_per_million for run in runs):.1f} |"
    )


class Replica:
    """A replica of the benchmark's Redis while the block runs: its replication stream flows."""

    def __init__(self, primary: Settings) -> None:
        self.primary_port = primary.redis_port
        self.settings = primary.model_copy(
            update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}
        )
        self.server = RedisServer(
            self.settings, extra_config=f"replicaof 127.0.0.1 {self.primary_port}\n"
        )

    def __enter__(self) -> Replica:
        self.server.ensure_running()
        with Redis.from_url(self.settings.redis_url) as redis:
            deadline = time.monotonic() + 60
            while redis.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    raise TimeoutError("the replica did not connect to the benchmark's Redis")
                time.sleep(0.1)
        return self

    def lag_bytes(self) -> int:
        """How far the replica's offset is behind the primary's."""
        with (
            Redis(port=self.primary_port) as primary,
            Redis.from_url(self.settings.redis_url) as me,
        ):
            return int(primary.info("replication")["master_repl_offset"]) - int(
                me.info("replication")["slave_repl_offset"]
            )

    def __exit__(self, *_: object) -> None:
        self.server.stop()


def _fresh_settings(base: Settings) -> Settings:
    tag = f"bench{uuid.uuid4().hex[:8]}"
    return base.model_copy(
        update={
            "call_events_topic": f"{tag}.call-events",
            "dead_letter_topic": f"{tag}.dead-letter",
            "worker_group": f"{tag}-group",
            "worker_metrics_port": 0,
        }
    )


def _identities(stream: list[dict[str, Any]]) -> int:
    records = {(e["campaignId"], e["dataId"]) for e in stream}
    calls = {(e["campaignId"], e["callId"]) for e in stream if "callId" in e}
    return len(records) + len(calls)


@dataclass(frozen=True)
class WorkerRun:
    rate: float  # events/s from the first event counted to the last
    startup: float  # seconds from launch to the first event counted
    events: int
    aof_bytes: int  # appended to the AOF while the worker ran
    rewrites_per_minute: float
    cpu_seconds: float  # the worker's user + system time
    replication_bytes: int  # the replication stream (0 without a replica)
    # The same seconds' CPU time of Redis and of the Kafka broker (serving the fetches)
    service_cpu_seconds: dict[str, float]

    @property
    def aof_per_event(self) -> float:
        return self.aof_bytes / self.events

    @property
    def cpu_per_million(self) -> float:
        return self.cpu_seconds * 1_000_000 / self.events


def _worker_rate(
    settings: Settings, command: list[str], events: int, expected: int, cwd: Path | None = None
) -> WorkerRun:
    """One worker counting ``events`` already in the topic, with what Redis wrote for them
    (``cwd``: where the command runs; ``python -m isales_stats`` imports the package there)."""
    run_settings = settings.model_copy(
        update={"worker_group": f"{settings.worker_group}-{uuid.uuid4().hex[:6]}"}
    )
    _empty_redis(run_settings)
    campaigns = [f"camp-{n:03d}" for n in range(CAMPAIGNS)]

    def counted() -> int:
        return distinct_identities_counted(run_settings, campaigns)

    redis = Redis.from_url(run_settings.redis_url)
    environment = {**os.environ, **run_settings.as_environment()}
    before = read_writes(redis)
    services = _stack_pids(run_settings)
    services_before = {name: cpu_seconds(pid) for name, pid in services.items()}
    launched = time.monotonic()
    worker = subprocess.Popen(
        command, env=environment, cwd=cwd,
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
        cpu = cpu_seconds(worker.pid)
        service_cpu = {name: cpu_seconds(pid) - services_before[name]
                       for name, pid in services.items()}  # fmt: skip
        after = read_writes(redis)
        share_left = 1 - first[1] / expected
        return WorkerRun(
            rate=events * share_left / max(now - first[0], 1e-3),
            startup=first[0] - launched,
            events=events,
            aof_bytes=after.aof_appended_since(before),
            rewrites_per_minute=after.rewrites_per_minute_since(before),
            cpu_seconds=cpu,
            replication_bytes=after.replication_offset - before.replication_offset,
            service_cpu_seconds=service_cpu,
        )
    finally:
        _stop(worker)
        redis.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _no_op_rate(settings: Settings, events: int) -> tuple[float, float]:
    run_settings = settings.model_copy(
        update={"worker_group": f"{settings.worker_group}-noop{uuid.uuid4().hex[:6]}"}
    )
    _empty_redis(run_settings)
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
        _stop(worker)


def _bare_consumer_rate(settings: Settings, events: int) -> float:
    async def consume() -> float:
        consumer = aiokafka.AIOKafkaConsumer(
            settings.call_events_topic,
            **client_options(settings),
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


def _start_worker(
    settings: Settings, cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """A worker counting ``settings``' topic on an empty Redis, running, and its metrics port
    (``cwd`` as for ``_worker_rate``)."""
    _empty_redis(settings)
    ensure_topics(settings)
    port = free_port()
    environment = {
        **os.environ, **settings.model_copy(update={"worker_metrics_port": port}).as_environment()
    }  # fmt: skip
    worker = subprocess.Popen(
        cli_command("worker"), env=environment, cwd=cwd,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_until_consuming(settings, worker)
    return worker, port


def _stack_pids(settings: Settings) -> dict[str, int]:
    """The Kafka broker's and the benchmark Redis' process ids (from their pid files)."""
    found = {
        "Kafka": KafkaBroker(Settings()).process.pid(),
        "Redis": RedisServer(settings).process.pid(),
    }
    return {name: pid for name, pid in found.items() if pid is not None}


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    worker.wait(30)


def _capacity(settings: Settings) -> float:
    """Events/s one worker counts while this process publishes them as fast as it can.

    The producer competes for the same two cores, as in the freshness runs that follow: this
    is the rate the whole machine sustains, of which they take fractions.
    """
    worker, _ = _start_worker(settings)
    redis = Redis.from_url(settings.redis_url)
    layout = KeyLayout(settings.key_prefix)
    campaigns = [f"camp-{n:03d}" for n in range(CAMPAIGNS)]
    try:
        began = time.perf_counter()
        with EventPublisher(settings) as publisher:
            now_ms = int(time.time() * 1000)
            for sent in range(CAPACITY_EVENTS):
                publisher.publish(_added(sent, now_ms, "cap"))
        deadline = time.monotonic() + 300
        targets = [(1, campaign) for campaign in campaigns]
        while sum(n for n, _ in state_sizes(redis, layout, targets)) < CAPACITY_EVENTS:
            if time.monotonic() > deadline:
                raise TimeoutError("the capacity run did not finish")
            time.sleep(0.02)
        return CAPACITY_EVENTS / (time.perf_counter() - began)
    finally:
        _stop(worker)
        redis.close()


def _added(sent: int, now_ms: int, tag: str) -> dict[str, Any]:
    return {
        "eventType": "data.added", "vdnId": 1, "campaignId": f"camp-{sent % CAMPAIGNS:03d}",
        "dataId": f"{tag}-{sent}", "batchId": f"batch-{sent % 5}", "occurredAt": now_ms,
    }  # fmt: skip


def _freshness(settings: Settings, rate: float, cwd: Path | None = None) -> dict[str, Any]:
    """Publish ``rate`` events/s for FRESHNESS_SECONDS; time every 50th until it is counted."""
    worker, metrics_port = _start_worker(settings, cwd)
    redis = Redis.from_url(settings.redis_url)
    watcher = FreshnessWatcher(settings.redis_url, KeyLayout(settings.key_prefix))

    def batches() -> tuple[float, float, float]:
        return (
            scrape_metric(metrics_port, "isales_counting_batch_seconds_count"),
            scrape_metric(metrics_port, "isales_counting_batch_seconds_sum"),
            scrape_metric(metrics_port, "isales_events_counted_total"),
        )

    try:
        watcher.start()
        sent = 0
        batches_before, writes_before, mark = batches(), read_writes(redis), aof_mark(redis)
        processes = {"worker": worker.pid, "this process (publisher)": os.getpid(),
                     **_stack_pids(settings)}  # fmt: skip
        cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        began = time.perf_counter()
        with EventPublisher(settings) as publisher:
            while (elapsed := time.perf_counter() - began) < FRESHNESS_SECONDS:
                due = int(elapsed * rate)
                now_ms = int(datetime.now(UTC).timestamp() * 1000)
                while sent < due:
                    event = _added(sent, now_ms, "fresh")
                    publisher.publish(event)
                    if sent % 50 == 0:
                        watcher.sent(event["campaignId"], event["dataId"])
                    sent += 1
                time.sleep(0.002)
            achieved = sent / (time.perf_counter() - began)
        watcher.wait_for_pending(30)
        watcher.stop()
        writes_after, batches_after = read_writes(redis), batches()
        by_write = bytes_by_write(mark)
        window = time.perf_counter() - began
        cpu_used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in processes.items()}
    finally:
        _stop(worker)
        redis.close()
    ordered = sorted(watcher.milliseconds())

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    count = batches_after[0] - batches_before[0]
    counted = batches_after[2] - batches_before[2]
    return {
        "sent": sent, "rate": achieved, "samples": len(ordered), "p50": quantile(0.5),
        "p90": quantile(0.9), "p99": quantile(0.99), "max": ordered[-1],
        "batches_per_second": count / FRESHNESS_SECONDS,
        "events_per_batch": counted / max(count, 1),
        "batch_ms": (batches_after[1] - batches_before[1]) * 1000 / max(count, 1),
        "aof_per_event": writes_after.aof_appended_since(writes_before) / max(sent, 1),
        "rewrites_per_minute": writes_after.rewrites_per_minute_since(writes_before),
        "cpu_per_million": cpu_used["worker"] * 1_000_000 / max(sent, 1),
        "by_write": by_write,
        "cores": {name: used / window for name, used in cpu_used.items()},
    }  # fmt: skip


def _wait_until_consuming(settings: Settings, worker: subprocess.Popen[bytes]) -> None:
    """Publish a probe until the worker counts it: the worker is then assigned and running."""
    layout = KeyLayout(settings.key_prefix)
    redis = Redis.from_url(settings.redis_url)
    with EventPublisher(settings) as publisher:
        publisher.publish({"eventType": "data.added", "vdnId": 1, "campaignId": "probe",
                           "dataId": "probe", "occurredAt": int(time.time() * 1000)})  # fmt: skip
    deadline = time.monotonic() + 60
    while not records_known(redis, layout, [(1, "probe", "probe")])[0]:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the worker did not start consuming")
        time.sleep(0.05)


def _memory(settings: Settings) -> dict[str, Any]:
    _empty_redis(settings)
    stream = campaign_stream(100_000, campaigns=CAMPAIGNS, batches=5, seed=9)
    context = CountingContext.from_settings(settings, retention_days=40, limits=NO_LIMITS)

    async def count() -> None:
        async with AsyncRedis.from_url(settings.redis_url) as redis:
            counter = EventCounter(redis, context)
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
