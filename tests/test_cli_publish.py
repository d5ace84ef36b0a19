"""``isales-stats publish FILE`` as a user runs it: real Kafka, real files, exit statuses."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from isales_stats.core.settings import Settings
from isales_stats.engine.topics import ensure_topics
from tests.support.events import ADDED, call_event
from tests.support.kafka_topics import read_topic
from tests.support.processes import run_cli

pytestmark = pytest.mark.stack

NOW_MS = int(time.time() * 1000)


def event(data_id: str, **changes: Any) -> dict[str, Any]:
    """Record ``data_id`` added to VDN 3's campaign C1, batch B1."""
    fields = {"vdnId": 3, "batchId": "B1", "dataId": data_id, "occurredAt": NOW_MS}
    return call_event(ADDED, **{**fields, **changes})


def test_json_lines_with_bad_events_sends_the_good_and_lists_the_bad(
    test_settings: Settings, tmp_path: Path
) -> None:
    ensure_topics(test_settings)
    source = tmp_path / "events.jsonl"
    source.write_text(
        "\n".join(
            [
                json.dumps(event("r1")),
                json.dumps(event("r2", vdnId=0)),  # line 2: out of range
                "",  # blank lines are skipped
                "{not json",  # line 4
                json.dumps(event("r3")),
                json.dumps(event("r4", occurredAt=NOW_MS + 3_600_000)),  # line 6: the future
                json.dumps(event("r5", eventType="call.result")),  # line 7: no callId
                json.dumps(event("r6")),
            ]
        )
        + "\n"
    )

    result = run_cli(test_settings, "publish", str(source))

    assert result.returncode == 1, result.stderr
    assert re.search(r"sent 3, rejected 4, failed 0", result.stdout), result.stdout
    rejects_path = tmp_path / "events.jsonl.rejected.jsonl"
    assert str(rejects_path) in result.stdout
    rejects = [json.loads(line) for line in rejects_path.read_text().splitlines()]
    assert [(reject["line"], reject["reason"].split()[0]) for reject in rejects] == [
        (2, "vdnId"),
        (4, "not"),
        (6, "occurredAt"),
        (7, "callId"),
    ]
    assert rejects[0]["event"] == event("r2", vdnId=0)
    assert rejects[1]["raw"] == "{not json"
    assert sorted(value["dataId"] for _, value in read_topic(test_settings)) == ["r1", "r3", "r6"]


def test_a_json_array_on_stdin_is_sent_whole(test_settings: Settings, tmp_path: Path) -> None:
    ensure_topics(test_settings)
    events = [event(f"r{n}") for n in range(200)]

    result = run_cli(
        test_settings,
        "publish",
        "-",
        "--rejects",
        str(tmp_path / "rejects.jsonl"),
        stdin=json.dumps(events, indent=1).encode(),
    )

    assert result.returncode == 0, result.stderr
    assert "sent 200, rejected 0, failed 0" in result.stdout
    assert not (tmp_path / "rejects.jsonl").exists()
    landed = read_topic(test_settings)
    assert sorted(value["dataId"] for _, value in landed) == sorted(f"r{n}" for n in range(200))
    assert {key for key, _ in landed} == {b"3:C1"}


def test_a_send_that_fails_is_reported_and_listed(test_settings: Settings, tmp_path: Path) -> None:
    # No ensure_topics: the topic does not exist and the broker does not create topics itself.
    source = tmp_path / "events.jsonl"
    source.write_text(json.dumps(event("r1")) + "\n" + json.dumps(event("r2")) + "\n")

    result = run_cli(test_settings, "publish", str(source), "--timeout", "2")

    assert result.returncode == 1, result.stderr
    assert "sent 0, rejected 0, failed 1" in result.stdout
    rejects = (tmp_path / "events.jsonl.rejected.jsonl").read_text().splitlines()
    assert len(rejects) == 1
    assert json.loads(rejects[0])["reason"].startswith("send failed")
    assert "not read" in result.stdout  # it stopped rather than time out on every event


def test_an_unreachable_kafka_is_a_start_failure(local_stack: Settings, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = local_stack.model_copy(update={"kafka_url": f"kafka://127.0.0.1:{port}"})
    source = tmp_path / "events.jsonl"
    source.write_text(json.dumps(event("r1")) + "\n")

    result = run_cli(settings, "publish", str(source), "--timeout", "2")

    assert result.returncode == 2
    assert "cannot reach Kafka" in result.stderr


def test_a_missing_file_is_a_start_failure(local_stack: Settings, tmp_path: Path) -> None:
    result = run_cli(local_stack, "publish", str(tmp_path / "nothing.jsonl"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr
