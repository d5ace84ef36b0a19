"""Fault row 6: poison input. 10,000 malformed messages interleaved with 50,000 valid events.

Random bytes (and a few tombstones), wrong types, missing fields, huge values (ids of
thousands of characters, messages of 300 KB, numbers out of range, JSON nested too deep),
timestamps far in the future, and batch conflicts (a new call of a known record that names
another batch, or none), each with a new identity so that one counted by mistake would show.
One worker runs throughout. The valid events must be counted exactly (the reference model),
every bad message must be in the dead-letter topic once, with its original key and bytes, its
category and a reason naming what is wrong, and the worker must still be the same process.
Both are judged once every partition is counted and committed to its log end (nothing left to
replay, and every dead letter out: one is sent before its source is acknowledged).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from tests.support.detail import expected_detail, read_detail
from tests.support.events import CALL, call_event
from tests.support.faults import (
    PacedProducer,
    assert_replay_over,
    fault_seed,
    figures,
    scrape_metric,
    wait_for_group,
    wait_until_exact,
)
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.streams import campaign_stream

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.faults]

VALID_EVENTS = 50_000
# How many malformed messages of each kind: 10,000 in all.
KINDS = {
    "random bytes": 2_000,
    "wrong type": 2_500,
    "missing field": 2_000,
    "huge value": 1_000,
    "future timestamp": 1_000,
    "batch conflict": 1_500,
}
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Poison:
    kind: str
    key: bytes | None
    value: bytes | None
    category: str  # x-dead-letter-category expected
    reason: str  # a fragment x-dead-letter-reason must contain


@dataclass(frozen=True)
class Record:
    campaign: str
    data_id: str
    batch: str | None


# (field, wrong value): each breaks the contract by its type or spelling alone.
WRONG_TYPES: list[tuple[str, Any]] = [
    ("vdnId", "1"), ("vdnId", 1.0), ("vdnId", True), ("vdnId", None), ("vdnId", [1]),
    ("campaignId", 1001), ("campaignId", {"id": "x"}), ("dataId", 7), ("dataId", ["r"]),
    ("callId", 12345), ("callId", ""), ("callStatus", "6"), ("callStatus", 6.0),
    ("callStatus", True), ("callStatus", 7), ("final", "yes"), ("final", 1), ("final", None),
    ("occurredAt", 1.79e12), ("occurredAt", "yesterday"), ("occurredAt", True),
    ("occurredAt", "2026-11-28T09:30:00"), ("occurredAt", "2026-13-45T09:30:00+08:00"),
    ("batchId", 5), ("batchId", "a{b}"), ("dataId", "r\x00n"), ("failCode", 123),
    ("version", 2), ("version", "1"), ("eventType", "call.Result"), ("eventType", None),
]  # fmt: skip
REQUIRED = {
    "data.added": ["eventType", "vdnId", "campaignId", "dataId", "occurredAt"],
    "data.removed": ["eventType", "vdnId", "campaignId", "dataId", "occurredAt"],
    "call.result": ["eventType", "vdnId", "campaignId", "dataId", "occurredAt", "callId",
                    "callStatus", "final"],
}  # fmt: skip


class PoisonMaker:
    """Malformed messages of each kind, deterministic by seed, each with a new identity."""

    def __init__(self, rng: random.Random, campaigns: list[str], now_ms: int) -> None:
        self.rng = rng
        self.campaigns = campaigns
        self.now_ms = now_ms
        self.serial = 0

    def event(self, kind: str | None = None) -> tuple[bytes, dict[str, Any]]:
        """A valid event that nothing else in the stream shares an identity with."""
        self.serial += 1
        campaign = self.rng.choice(self.campaigns)
        event_type = kind or self.rng.choice(list(REQUIRED))
        occurred_at = self.now_ms - self.rng.randint(0, 3 * HOUR_MS)
        batch = f"batch-{self.rng.randrange(3)}" if self.rng.random() < 0.8 else None
        body = call_event(
            event_type,
            campaignId=campaign,
            dataId=f"poison-{self.serial}",
            occurredAt=occurred_at,
            batchId=batch,
            # A connected, final call (the factory's default) of an identity of its own.
            **({"callId": f"poison-call-{self.serial}"} if event_type == CALL else {}),
        )
        return f"1:{campaign}".encode(), body

    def make(self, kind: str, known: list[Record]) -> Poison:
        rng = self.rng
        if kind == "random bytes":
            if rng.random() < 0.01:  # a tombstone (a key, no value)
                return Poison(kind, self.event()[0], None, "invalid", "empty message")
            key = rng.choice([self.event()[0], rng.randbytes(8), None])
            return Poison(kind, key, rng.randbytes(rng.randint(8, 300)), "invalid", "JSON")
        if kind == "wrong type":
            key, body = self.event("call.result")
            field, wrong = rng.choice(WRONG_TYPES)
            body[field] = wrong
            return Poison(kind, key, orjson.dumps(body), "invalid", field)
        if kind == "missing field":
            key, body = self.event()
            field = rng.choice(REQUIRED[body["eventType"]])
            del body[field]
            return Poison(kind, key, orjson.dumps(body), "invalid", field)
        if kind == "huge value":
            return self._huge(kind)
        if kind == "future timestamp":
            key, body = self.event()
            ahead = rng.randint(HOUR_MS, 5 * 365 * 24 * HOUR_MS)
            body["occurredAt"] = self.now_ms + ahead
            if rng.random() < 0.3:  # the ISO-8601 spelling of a far future
                body["occurredAt"] = f"{rng.randint(2100, 4999)}-01-01T00:00:00+08:00"
            return Poison(kind, key, orjson.dumps(body), "future", "beyond the allowed clock skew")
        if kind == "batch conflict":
            record = rng.choice(known)
            self.serial += 1
            other = [None, "", *(f"batch-{n}" for n in range(4))]
            batch = rng.choice([b for b in other if (b or None) != record.batch])
            body = call_event(
                CALL,
                campaignId=record.campaign,
                dataId=record.data_id,
                callId=f"conflict-{self.serial}",
                callStatus=5,
                final=False,
                occurredAt=self.now_ms - rng.randint(0, HOUR_MS),
                batchId=batch,  # None: no batchId at all
            )
            key = f"1:{record.campaign}".encode()  # its record's partition, after its events
            return Poison(kind, key, orjson.dumps(body), "batch-conflict", "contradicts")
        raise ValueError(kind)

    def _huge(self, kind: str) -> Poison:
        rng = self.rng
        key, body = self.event("call.result")
        if self.serial % 200 == 0:  # a few messages of 300 KB
            body["dataId"] = "d" * 300_000
            return Poison(kind, key, orjson.dumps(body), "invalid", "dataId")
        if rng.random() < 0.1:
            return Poison(kind, key, b"[" * 5000 + b"]" * 5000, "invalid", "JSON")
        field, value = rng.choice(
            [
                ("dataId", "d" * rng.randint(65, 5000)),
                ("campaignId", "c" * rng.randint(65, 20_000)),
                ("batchId", "b" * rng.randint(201, 5000)),
                ("callId", "x" * rng.randint(65, 5000)),
                ("vdnId", rng.choice([10_000, 2**31, 2**63, 2**70])),
                ("occurredAt", rng.choice([10**14, 10**18, -1])),
                ("failCode", "0" * rng.randint(17, 5000)),
            ]
        )
        body[field] = value
        # The standard library spells integers beyond 64 bits, which orjson refuses to.
        return Poison(kind, key, json.dumps(body).encode(), "invalid", field)


def interleave(
    stream: list[dict[str, Any]], maker: PoisonMaker, rng: random.Random
) -> tuple[list[tuple[bytes | None, bytes | None]], dict[int, Poison]]:
    """The valid events with the poison at random places; index in the sequence -> poison."""
    kinds = [kind for kind, count in KINDS.items() for _ in range(count)]
    rng.shuffle(kinds)
    # After the first 1,000 valid events: a batch conflict needs a record seen before it.
    places = sorted(rng.randrange(1_000, len(stream)) for _ in kinds)
    messages: list[tuple[bytes | None, bytes | None]] = []
    poison: dict[int, Poison] = {}
    known: list[Record] = []
    seen: set[tuple[str, str]] = set()
    next_place = 0
    for position, event in enumerate(stream):
        while next_place < len(places) and places[next_place] == position:
            bad = maker.make(kinds[next_place], known)
            poison[len(messages)] = bad
            messages.append((bad.key, bad.value))
            next_place += 1
        messages.append((f"1:{event['campaignId']}".encode(), orjson.dumps(event)))
        if (event["campaignId"], event["dataId"]) not in seen:
            seen.add((event["campaignId"], event["dataId"]))
            known.append(Record(event["campaignId"], event["dataId"], event.get("batchId")))
    return messages, poison


def read_all_dead_letters(settings: Settings, timeout: float) -> list[Any]:
    """Everything in the dead-letter topic, to its log end. Read once the replay is over
    (``assert_replay_over``): the worker sends a message's dead letter before it acknowledges
    the message, so with every source committed the topic holds every dead letter it will."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_bytes=8 * 1024 * 1024,
    )
    topic = settings.dead_letter_topic
    letters: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        partitions = [
            TopicPartition(topic, number)
            for number in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, "the dead-letter topic was not read to its end"
            for records in consumer.poll(timeout_ms=500).values():
                letters += records
    finally:
        consumer.close()
    return letters


def test_ten_thousand_poison_messages_are_dead_lettered_and_the_rest_counted_exactly(
    test_settings: Settings, tmp_path: Path
) -> None:
    began = time.monotonic()
    seed = fault_seed("row 6: poison input")
    rng = random.Random(seed)
    now = datetime.now(UTC)
    stream = campaign_stream(VALID_EVENTS, campaigns=12, seed=seed, now=now)
    expected = expected_detail(stream)
    campaigns = sorted({event["campaignId"] for event in stream})
    maker = PoisonMaker(rng, campaigns, int(now.timestamp() * 1000))
    messages, poison = interleave(stream, maker, rng)
    assert len(poison) == sum(KINDS.values())
    ensure_topics(test_settings)

    metrics_port = free_port()
    worker = ServiceProcess(
        test_settings, "worker", log_dir=tmp_path, worker_metrics_port=metrics_port
    )
    with worker:
        assert worker.process is not None
        pid = worker.process.pid
        wait_for_group(test_settings, 1, timeout=120)
        producer = PacedProducer(
            test_settings, messages, rate=25_000, keep_metadata=True,
            producer_options={"max_request_size": 2 * 1024 * 1024},
        ).start()  # fmt: skip
        producer.join(timeout=300)
        assert not producer.failures, producer.failures[:5]
        exact = wait_until_exact(test_settings, expected, timeout=180)
        assert exact, f"the valid events were not counted exactly:\n{worker.log()}"
        committed = assert_replay_over(test_settings, worker.log)
        assert read_detail(test_settings) == expected, "a replay changed the counts"
        letters = read_all_dead_letters(test_settings, timeout=180)
        dead_lettered = scrape_metric(metrics_port, "isales_events_dead_lettered_total")
        counted = scrape_metric(metrics_port, "isales_events_counted_total")
        assert worker.process.pid == pid
        assert worker.process.poll() is None, f"the worker died:\n{worker.log()}"
    log = worker.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]

    by_source: dict[tuple[int, int], Any] = {}
    for letter in letters:
        headers = {name: value.decode() for name, value in letter.headers}
        assert headers["x-source-topic"] == test_settings.call_events_topic
        source = (int(headers["x-source-partition"]), int(headers["x-source-offset"]))
        assert source not in by_source, f"dead-lettered twice: {source}"
        by_source[source] = (letter, headers)
    wrong: list[str] = []
    for index, bad in poison.items():
        found = by_source.pop(producer.metadata[index], None)
        if found is None:
            wrong.append(f"missing: {bad.kind} {bad.value!r:.120}")
            continue
        letter, headers = found
        if (letter.key, letter.value) != (bad.key, bad.value or b""):
            wrong.append(f"bytes changed: {bad.kind} {bad.value!r:.80}")
        if headers["x-dead-letter-category"] != bad.category:
            wrong.append(f"category {headers['x-dead-letter-category']}: {bad.value!r:.80}")
        if bad.reason not in headers["x-dead-letter-reason"]:
            wrong.append(f"reason {headers['x-dead-letter-reason']!r} lacks {bad.reason!r}")
    assert not wrong, f"{len(wrong)} poison messages mishandled:\n" + "\n".join(wrong[:20])
    assert not by_source, f"{len(by_source)} valid events were dead-lettered"

    categories = Counter(bad.category for bad in poison.values())
    figures(
        "row 6: poison input",
        {
            "seed": seed,
            "messages": f"{len(messages):,}: {VALID_EVENTS:,} valid, {len(poison):,} malformed "
            f"(produced in {producer.seconds:.1f} s)",
            "kinds": ", ".join(f"{kind} {count:,}" for kind, count in KINDS.items()),
            "dead letters": f"{len(letters):,} (metric {dead_lettered:,.0f}): "
            + ", ".join(f"{name} {count:,}" for name, count in sorted(categories.items()))
            + "; each once, original key and bytes, expected category and reason",
            "valid events": f"exact (= reference model), {counted:,.0f} counted",
            "worker": f"pid {pid} throughout, alive at the end, no traceback in its log",
            "committed": committed,
            "duration": f"{time.monotonic() - began:.0f} s",
        },
    )
