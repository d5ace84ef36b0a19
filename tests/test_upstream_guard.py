"""The upstream code that batch delivery relies on, held to the source it was read against.

engine/batch_delivery.py (and engine/lag.py, engine/agents.py) use private members of
faust-streaming, mode-streaming and aiokafka: Faust's drain loop copied line for line, its
offset bookkeeping (``_read_offset``, ``_committed_offset``, ``_n_acked``, ``_commit_every``,
``_add_gap``, ``_new_offset``), the consumer thread's factory of the aiokafka consumer, the
attribute aiokafka passes to its Fetcher, and how a revocation clears and cancels mode's queue.
The three are pinned exactly in pyproject.toml; this test makes an upgrade show what to re-read.

Each entry hashes the source of one function. When an upgrade changes one, the test fails and
names the file and the member, and why we depend on it: read the new source against ours, adapt
ours if needed, then record the new hash below.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect

import pytest

# (module, class, member, sha256 of its source (first 16 hex digits), what we rely on)
RELIED_ON = [
    ("faust.transport.consumer", "Consumer", "__init__", "302410d59e6972d1",
     "the bookkeeping attributes our drain loop and perform_seek read and write"),
    ("faust.transport.consumer", "Consumer", "_drain_messages", "44a2500309e83c63",
     "BatchDeliveryConsumer._drain_messages is a copy of it, line for line"),
    ("faust.transport.consumer", "Consumer", "perform_seek", "0e8c130ff4b0afd8",
     "ours calls it, then seeks on to the resume points and moves _committed_offset"),
    ("faust.transport.consumer", "Consumer", "_new_offset", "1d2c7ea89a7ad4f1",
     "it freezes a partition whose acks start past _committed_offset (the commit freeze)"),
    ("faust.transport.consumer", "Consumer", "ack", "5fcf41cf45153475",
     "it drops acks below _committed_offset: a seek back is never committed backwards"),
    ("faust.transport.consumer", "Consumer", "track_message", "217d7f1399a4cd8e",
     "the drain loop tracks each batch message as a stream would"),
    ("faust.transport.consumer", "Consumer", "_add_gap", "4df2573ded7c1c2c",
     "the drain loop records offset gaps (compacted or aborted records) with it"),
    ("faust.transport.consumer", "Consumer", "commit", "a354437baaa08bf8",
     "the drain loop commits inline every _commit_every acks, as Faust's does"),
    ("faust.transport.drivers.aiokafka", "Consumer", "_new_consumer_thread", "0870ec53dea75083",
     "BatchDeliveryConsumer overrides it to make BatchDeliveryConsumerThread"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "_create_worker_consumer",
     "c2701bfc3e6f6cad", "ours builds the consumer with it, then lowers fetch_max_wait_ms"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "seek_wait",
     "12e8d34e554e9024", "seeks run in the consumer's thread through it"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "verify_event_path",
     "b983e7735f647cb3", "its livelock check reads Monitor.stream_inbound_time, which we set"),
    ("faust.sensors.monitor", "Monitor", "on_stream_event_in", "df6d2e5f6397ce44",
     "what a stream records per event; the drain loop records the same per fetch"),
    ("faust.app.base", "App", "_new_transport", "42db531312dd776f",
     "CountingApp overrides it to use the batch-delivery transport"),
    ("mode.utils.queues", "ThrowableQueue", "clear", "d18f09e451acf62e",
     "a revocation clears the agent's queue and cancels the puts waiting (agents.hand_over)"),
    ("mode.utils.queues", "FlowControlQueue", "put", "0ba84eb5e357a17e",
     "a full queue of fetches makes hand_over wait: back-pressure on Kafka"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer", "__init__", "01506f316191f7c9",
     "it stores fetch_max_wait_ms as _fetch_max_wait_ms, which we overwrite"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer", "start", "2f1ba70443327538",
     "it hands _fetch_max_wait_ms to the Fetcher it makes"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("module", "owner", "member", "digest", "reason"),
    RELIED_ON,
    ids=[f"{owner}.{member}" for _, owner, member, _, _ in RELIED_ON],
)
def test_the_upstream_source_is_the_one_we_read(
    module: str, owner: str, member: str, digest: str, reason: str
) -> None:
    cls = getattr(importlib.import_module(module), owner)
    function = getattr(cls, member)
    source = inspect.getsource(function)
    found = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert found == digest, (
        f"{inspect.getsourcefile(function)}: {owner}.{member} is not the source we read "
        f"(sha256 {found}..., recorded {digest}). We rely on it because {reason}. Re-read "
        "it against engine/batch_delivery.py, then record the new hash in this test's table."
    )
