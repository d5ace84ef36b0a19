"""Notifications benchmark: how soon a decided notification reaches a real receiver, and what
deciding them costs the worker.

Latency. A real worker counts a stream published through Kafka at a steady RATE events/s;
real notifier processes deliver to SUBSCRIPTIONS subscriptions of VDN 1, whose addresses are
distinct paths on a few real receiver processes (tests/support/webhook_receiver.py, which
notes each request's arrival). The stream is background traffic on large campaigns (records
added and connected calls, which notify nothing) with small campaigns woven in: each imports
a few records and dials them to the end (``campaign.finished``), and every few of them also
has an abandoned call first (``abandon.over`` for each of the three windows). Latency is the
receiver's arrival time minus the entry's ``timestamp``, which the worker decides just before
the counting script that writes it: counting -> outbox -> due set and wake-up -> notifier ->
HTTP -> receiver, for every delivery (notification x subscription).

Cost. The engine benchmark's stream is published once; one worker counts it from the start
(full fetches) with ISALES_NOTIFICATIONS=on and =off in turn, each run on an empty private
Redis, as benchmarks/against.py takes two revisions in turn; medians and their ratio.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.engine import (
    CAMPAIGNS,
    WorkerRun,
    _clean_up,
    _fresh_settings,
    _identities,
    _start_worker,
    _stop,
    _worker_rate,
    cpu_seconds,
)
from isales_stats.commands import cli_command
from isales_stats.commands.stack import Stack
from isales_stats.commands.stack.redis import RedisServer
from isales_stats.core.settings import Settings
from isales_stats.producing.publisher import EventPublisher
from tests.support.clock import now_ms
from tests.support.events import ADDED, CALL, call_event
from tests.support.kafka_topics import publish
from tests.support.notifications import subscribe
from tests.support.ports import free_port
from tests.support.streams import campaign_stream
from tests.support.webhook_receiver import Receiver

# --- the latency run ---------------------------------------------------------------------
RATE = 5_000  # events/s published
SECONDS = 30
SUBSCRIPTIONS = 100
RECEIVERS = 2
NOTIFIERS = 2
# 2.5 notifications a second, 250 deliveries: about what two notifiers keep up with here
# beside the worker (at twice that, the backlog grew all run and the latency measured it).
SMALL_CAMPAIGNS_PER_SECOND = 1
RECORDS_PER_SMALL_CAMPAIGN = 4
ABANDONING_EVERY = 2  # every 2nd small campaign has an abandoned call before its final calls
WINDOWS = 3  # today, rolling24h, rolling30d: an abandoned call crosses each
VDN = 1
DELIVERY_WAIT_SECONDS = 180
# --- the cost run ------------------------------------------------------------------------
COST_EVENTS = 200_000
COST_RUNS = 3

# Where a small campaign's events fall, in slots (1/RATE s) after its start: the imports, the
# abandoned call (if any), the final calls. A few hundred ms apart, as a dialer's would be.
_IMPORT_AT, _ABANDON_AT, _FINAL_AT = 0, 1_000, 2_000
_SLOTS_PER_SMALL_CAMPAIGN = RATE // SMALL_CAMPAIGNS_PER_SECOND


def run() -> str:
    dev = Settings()
    report = Stack(dev).up()
    with tempfile.TemporaryDirectory(prefix="isales-bench-notify-") as directory:
        base = dev.model_copy(
            update={
                "redis_url": f"redis://127.0.0.1:{free_port()}/0",
                "stack_dir": Path(directory) / "stack",
            }
        )
        redis_server = RedisServer(base)
        redis_server.ensure_running()
        used: list[Settings] = []
        try:
            latency_settings = _fresh_settings(base)
            used.append(latency_settings)
            latency = _latency(latency_settings, Path(directory))
            cost_settings = _fresh_settings(base)
            used.append(cost_settings)
            on, off = _cost(cost_settings)
        finally:
            _clean_up(base, used)
            redis_server.stop()
            Stack(dev).down(only=report.started)
    return "\n".join([*_latency_lines(latency), "", *_cost_lines(on, off)])


# --- latency -------------------------------------------------------------------------------
def _slot_events(slot: int) -> list[dict[str, Any]]:
    """The events of one slot: one background event, and any small campaign's due then."""
    events = [_background(slot)]
    for offset in (_IMPORT_AT, _ABANDON_AT, _FINAL_AT):
        if (slot - offset) % _SLOTS_PER_SMALL_CAMPAIGN == 0 and slot >= offset:
            events += _small_campaign_events(
                (slot - offset) // _SLOTS_PER_SMALL_CAMPAIGN, offset, slot
            )
    return events


def _background(slot: int) -> dict[str, Any]:
    """Records added to large campaigns, and connected calls that leave them to dial."""
    campaign, record = f"bg-{slot % CAMPAIGNS:03d}", f"bg-{slot - slot % 2}"
    if slot % 2 == 0:
        return call_event(ADDED, vdnId=VDN, campaignId=campaign, dataId=record)
    return call_event(
        CALL, vdnId=VDN, campaignId=campaign, dataId=record, callId=f"c{slot}", final=False
    )


def _small_campaign_events(number: int, offset: int, slot: int) -> list[dict[str, Any]]:
    campaign = f"small-{number:05d}"
    records = [f"r{n}" for n in range(RECORDS_PER_SMALL_CAMPAIGN)]
    if offset == _IMPORT_AT:
        return [call_event(ADDED, vdnId=VDN, campaignId=campaign, dataId=r) for r in records]
    if offset == _ABANDON_AT:
        if number % ABANDONING_EVERY:
            return []
        return [
            call_event(CALL, vdnId=VDN, campaignId=campaign, dataId=records[0],
                       callId="a0", callStatus=5, failCode="00702", final=False)
        ]  # fmt: skip
    return [
        call_event(CALL, vdnId=VDN, campaignId=campaign, dataId=record, callId=f"f{n}")
        for n, record in enumerate(records)
    ]


def _expected_notifications(slots: int) -> Counter[str]:
    """What the stream's small campaigns notify, those whose final calls were published."""

    def reached(offset: int) -> list[int]:
        started = range(slots // _SLOTS_PER_SMALL_CAMPAIGN + 1)
        return [n for n in started if n * _SLOTS_PER_SMALL_CAMPAIGN + offset < slots]

    abandoning = [n for n in reached(_ABANDON_AT) if n % ABANDONING_EVERY == 0]
    return Counter(
        {"campaign.finished": len(reached(_FINAL_AT)), "abandon.over": len(abandoning) * WINDOWS}
    )


@contextmanager
def _delivery_chain(settings: Settings, directory: Path) -> Iterator[dict[str, Any]]:
    """Receivers listening, subscriptions made, a worker and the notifiers running."""
    with ExitStack() as stack:
        worker, _ = _start_worker(settings)  # empties the Redis: subscriptions come after
        stack.callback(_stop, worker)
        receivers = [
            Receiver(settings, directory, f"receiver{n}").start() for n in range(RECEIVERS)
        ]
        for receiver in receivers:
            stack.callback(receiver.stop)
        for n in range(SUBSCRIPTIONS):
            receiver = receivers[n % RECEIVERS]
            subscribe(settings, f"{receiver.url}/{n}", (VDN,))
        environment = {**os.environ, **settings.as_environment()}
        notifiers = []
        for _ in range(NOTIFIERS):
            notifier = subprocess.Popen(
                cli_command("notifier"), env=environment,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            stack.callback(_stop, notifier)
            notifiers.append(notifier)
        yield {"worker": worker, "notifiers": notifiers, "receivers": receivers}


def _latency(base: Settings, directory: Path) -> dict[str, Any]:
    # A deployment's timeouts, leases and backoffs; only plain http to local receivers allowed.
    settings = base.model_copy(
        update={
            "webhook_allow_http": True,
            "webhook_allow_private_addresses": True,
            "notifier_metrics_port": 0,
        }
    )
    with _delivery_chain(settings, directory) as chain:
        processes = {
            "worker": chain["worker"].pid,
            **{f"notifier {n + 1}": p.pid for n, p in enumerate(chain["notifiers"])},
            **{f"receiver {n + 1}": r.process_handle.pid
               for n, r in enumerate(chain["receivers"])},
            "this process (publisher)": os.getpid(),
        }  # fmt: skip
        time.sleep(3)  # the notifiers announce themselves and take their shards' leases
        cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        slot = 0
        began = time.perf_counter()
        with EventPublisher(settings) as publisher:
            while (elapsed := time.perf_counter() - began) < SECONDS:
                due = int(elapsed * RATE)
                while slot < due:
                    for event in _slot_events(slot):
                        event["occurredAt"] = now_ms()
                        publisher.publish(event)
                    slot += 1
                time.sleep(0.002)
            published_for = time.perf_counter() - began
        expected = _expected_notifications(slot)
        receivers: list[Receiver] = chain["receivers"]
        wanted = sum(expected.values()) * SUBSCRIPTIONS
        deadline = time.monotonic() + DELIVERY_WAIT_SECONDS
        while (seen := _deliveries_seen(receivers)) < wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{seen:,} of {wanted:,} deliveries arrived in time")
            time.sleep(0.5)
        drained_for = time.perf_counter() - began
        cpu_used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in processes.items()}
        accepted = [request for r in receivers for request in r.accepted()]
    return {
        "published": slot, "rate": slot / published_for, "expected": expected,
        "accepted": accepted, "drained_for": drained_for,
        "cores": {name: used / drained_for for name, used in cpu_used.items()},
    }  # fmt: skip


def _deliveries_seen(receivers: list[Receiver]) -> int:
    """Distinct (subscription path, notification) pairs that reached a receiver with their
    body so far (a repeat counts once; the records are parsed once all arrived)."""
    return len({pair for r in receivers for pair in _DELIVERY.findall(r.record.read_bytes())})


# The receiver's line: "path" first, then the headers (webhook-id among them), then "body".
_DELIVERY = re.compile(rb'"path": "([^"]+)".*?"webhook-id": "([^"]+)".*?"body": "[^"]')


def _latency_lines(result: dict[str, Any]) -> list[str]:
    accepted: list[dict[str, Any]] = result["accepted"]
    milliseconds: list[float] = []
    kinds: dict[str, str] = {}
    cut_off = [request for request in accepted if not request["body"]]
    accepted = [request for request in accepted if request["body"]]
    for request in accepted:
        payload = orjson.loads(request["body"])
        kinds[request["headers"]["webhook-id"]] = payload["type"]
        decided = datetime.fromisoformat(payload["timestamp"]).astimezone(UTC).timestamp()
        milliseconds.append((request["arrived"] - decided) * 1000)
    ordered: list[float] = sorted(milliseconds)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    notifier_ms = sum(
        share * result["drained_for"] * 1000 for name, share in result["cores"].items()
        if name.startswith("notifier")
    ) / len(accepted)  # fmt: skip
    by_kind = Counter(kinds.values())
    expected: Counter[str] = result["expected"]
    notifications = len(kinds)
    return [
        "## Notifications",
        "",
        f"### Latency, counted to received, at {RATE:,} events/s",
        "",
        f"{result['published']:,} events published through Kafka over {SECONDS} s "
        f"({result['rate']:,.0f} events/s, paced), counted by one real worker; "
        f"{NOTIFIERS} notifier processes deliver to {SUBSCRIPTIONS} subscriptions of the VDN, "
        f"distinct paths on {RECEIVERS} receiver processes (Python's ThreadingHTTPServer, "
        "answering 200). The stream: records added and connected calls on "
        f"{CAMPAIGNS} large campaigns, which notify nothing, and "
        f"{SMALL_CAMPAIGNS_PER_SECOND} small campaign a second of "
        f"{RECORDS_PER_SMALL_CAMPAIGN} records each, imported then dialled to the end "
        f"(`campaign.finished`); every {ABANDONING_EVERY}nd had an abandoned call first "
        f"(`abandon.over` in each of the {WINDOWS} windows).",
        "",
        f"Notifications: **{notifications:,}** ("
        + ", ".join(f"{count:,} `{kind}`" for kind, count in sorted(by_kind.items()))
        + "; the stream predicts "
        + ", ".join(f"{count:,} `{kind}`" for kind, count in sorted(expected.items()))
        + f"). Deliveries (notifications x subscriptions): **{len(accepted):,}** accepted, "
        f"{len(accepted) - notifications * SUBSCRIPTIONS:,} beyond one per notification and "
        "subscription (a repeated delivery), and "
        f"{len(cut_off)} attempts the notifier cut off before sending the body; the last "
        f"arrived {result['drained_for']:.0f} s after publishing began (deployment defaults: "
        "leases, timeouts, backoffs).",
        "",
        "Latency of every delivery: the receiver's arrival minus the notification's "
        "`timestamp` (decided by the worker just before the counting script that writes it):",
        "",
        "| deliveries | p50 | p90 | p99 | max |",
        "| ---: | ---: | ---: | ---: | ---: |",
        f"| {len(ordered):,} | {quantile(0.5):.0f} ms | {quantile(0.9):.0f} ms "
        f"| {quantile(0.99):.0f} ms | {ordered[-1]:.0f} ms |",
        "",
        "Where the two cores went from the first event published to the last delivery (CPU "
        "time / wall time; Kafka and Redis not listed):",
        "",
        "| " + " | ".join(result["cores"]) + " |",
        "|" + " ---: |" * len(result["cores"]),
        "| " + " | ".join(f"{value:.2f}" for value in result["cores"].values()) + " |",
        "",
        f"The notifiers' CPU per delivery: {notifier_ms:.1f} ms (user + system, all of them).",
    ]


# --- cost ----------------------------------------------------------------------------------
def _cost(settings: Settings) -> tuple[list[WorkerRun], list[WorkerRun]]:
    """The worker's rate on the engine benchmark's stream, notifications on and off in turn."""
    stream = campaign_stream(COST_EVENTS, campaigns=CAMPAIGNS, batches=5, seed=5)
    publish(settings, stream)
    identities = _identities(stream)
    on: list[WorkerRun] = []
    off: list[WorkerRun] = []
    for _ in range(COST_RUNS):
        for notifying, runs in ((True, on), (False, off)):
            turned = settings.model_copy(update={"notifications": notifying})
            runs.append(_worker_rate(turned, cli_command("worker"), len(stream), identities))
    return on, off


def _cost_lines(on: list[WorkerRun], off: list[WorkerRun]) -> list[str]:
    def median(runs: list[WorkerRun]) -> float:
        return statistics.median(run.rate for run in runs)

    def cells(runs: list[WorkerRun]) -> str:
        return (
            f"{median(runs):,.0f} | {', '.join(f'{run.rate:,.0f}' for run in runs)} "
            f"| {statistics.median(run.cpu_per_million for run in runs):.1f} "
            f"| {statistics.median(run.aof_per_event for run in runs):.0f}"
        )

    ratio = median(on) / median(off)
    return [
        "### What deciding notifications costs the worker",
        "",
        f"The engine benchmark's stream ({COST_EVENTS:,} events, {CAMPAIGNS} campaigns, "
        "5 batches) published once; one worker counts it from the start (full fetches) with "
        f"`ISALES_NOTIFICATIONS` on and off in turn, {COST_RUNS} runs each, each on an empty "
        "private Redis with the local stack's persistence. No notifier runs: this is the "
        "counting side (the outbox writes, the notified hash, the due set, the sweep).",
        "",
        "| notifications | events/s (median) | runs | worker CPU-s per 1M events | AOF B/event |",
        "| --- | ---: | --- | ---: | ---: |",
        f"| on | {cells(on)} |",
        f"| off | {cells(off)} |",
        "",
        f"On / off: **{ratio:.2f}** (target >= 0.95).",
    ]


if __name__ == "__main__":
    print(run())
