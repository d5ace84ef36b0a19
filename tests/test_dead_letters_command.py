"""``isales-stats dead-letters`` on the real Kafka: each letter the worker would publish, with
its reason, category and original event; filtered by VDN and campaign; the end found, stopped.

The letters are made by the worker's own admission step (``CountingPipeline.admit``) from bad
events, and published as the worker publishes them (``engine/agents.py``,
``send_dead_letter``: the original key and bytes, ``DeadLetter.headers``).
"""

from __future__ import annotations

import json

import orjson
import pytest
from kafka import KafkaProducer

from isales_stats.core.kafka_connection import client_options
from isales_stats.core.settings import Settings
from isales_stats.engine.pipeline import CountingPipeline, RawMessage
from isales_stats.engine.topics import ensure_topics
from tests.support.events import call_event
from tests.support.ports import free_port
from tests.support.processes import run_cli

pytestmark = pytest.mark.stack


def dead_letter(settings: Settings, messages: list[RawMessage]) -> None:
    """What the worker does with ``messages``: admit them, publish what it sets aside."""
    # Admission decodes only; it never touches the counter.
    pipeline = CountingPipeline(None, 300)  # type: ignore[arg-type]
    batch = pipeline.admit(messages)
    assert len(batch.dead_letters) == len(messages) - len(batch.events)
    producer = KafkaProducer(**client_options(settings), acks="all")
    for letter in batch.dead_letters:
        producer.send(
            settings.dead_letter_topic,
            key=letter.message.key,
            value=letter.message.value or b"",
            headers=letter.headers(),
        )
    producer.flush()
    producer.close()


def test_dead_letters_prints_each_reason_category_and_event(test_settings: Settings) -> None:
    ensure_topics(test_settings)
    topic = test_settings.call_events_topic
    missing = call_event("call.result", campaignId="C1")
    del missing["callId"]
    unknown = call_event("call.result", campaignId="C2") | {"eventType": "call.Result"}
    other_vdn = call_event("call.result", campaignId="C1") | {"vdnId": 2, "callStatus": 7}
    good = call_event("call.result", campaignId="C1")
    values = [orjson.dumps(event) for event in (missing, unknown, other_vdn, good)]
    dead_letter(
        test_settings,
        [RawMessage(value, b"1:C1", topic, 3, offset) for offset, value in enumerate(values)]
        + [RawMessage(b"not json", b"1:C1", topic, 3, 4)],
    )

    listed = run_cli(test_settings, "dead-letters")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == f"{topic}[3]@0 [invalid] callId is missing: {values[0].decode()}"
    assert lines[1].startswith(f"{topic}[3]@1 [invalid] unknown eventType: 'call.Result' (known: ")
    assert lines[2].startswith(f"{topic}[3]@2 [invalid] callStatus must be 6")
    assert lines[3].startswith(f"{topic}[3]@4 [invalid] not JSON: ")
    assert lines[3].endswith(": not json")
    assert len(lines) == 4  # the good event is counted, not set aside

    campaign = run_cli(test_settings, "dead-letters", "--vdn", "1", "--campaign", "C1", "--json")
    assert campaign.returncode == 0, campaign.stderr
    letters = [json.loads(line) for line in campaign.stdout.splitlines()]
    # VDN 2's C1 is left out; the letter that is not JSON is matched by its key.
    assert [letter["source"] for letter in letters] == [f"{topic}[3]@0", f"{topic}[3]@4"]
    assert letters[0]["reason"] == "callId is missing"
    assert letters[0]["category"] == "invalid"
    assert letters[0]["event"] == missing
    assert (letters[1]["event"], letters[1]["value"], letters[1]["key"]) == (
        None,
        "not json",
        "1:C1",
    )


def test_dead_letters_says_in_one_line_when_there_is_no_topic(test_settings: Settings) -> None:
    absent = test_settings.model_copy(
        update={"dead_letter_topic": f"{test_settings.dead_letter_topic}-none"}
    )
    refused = run_cli(absent, "dead-letters")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"isales-stats dead-letters: no topic {absent.dead_letter_topic} "
        "(ISALES_DEAD_LETTER_TOPIC): no dead letter yet, or another topic is meant"
    ]


def test_dead_letters_names_the_setting_of_a_kafka_it_cannot_reach(
    test_settings: Settings,
) -> None:
    nobody = test_settings.model_copy(update={"kafka_url": f"kafka://127.0.0.1:{free_port()}"})
    refused = run_cli(nobody, "dead-letters", timeout=60)
    assert refused.returncode == 1, refused.stderr
    lines = refused.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"isales-stats dead-letters: cannot read {nobody.dead_letter_topic}")
    assert "(ISALES_KAFKA_URL)" in lines[0]  # the setting that exists, to fix the address
