"""Fixtures over the real local stack: Kafka and Redis, started for the session if not running.

Tests share the services but not their data: each test gets its own Redis key prefix and, when
it needs Kafka, its own topics. What the session started, it stops at the end. What the
fixtures use, and what tests share besides, lives in tests/support/.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from isales_stats.api.telemetry import ACCESS_LOGGER
from isales_stats.commands.stack import Stack
from isales_stats.core.keys import KeyLayout
from isales_stats.core.settings import Settings
from tests.support.cleanup import delete_keys, delete_topics
from tests.support.counting import EventCounters


@pytest.fixture(scope="session")
def local_stack() -> Iterator[Settings]:
    """The real Kafka and Redis; started here only if they were not already running."""
    settings = Settings()
    stack = Stack(settings)
    report = stack.up()
    yield settings
    stack.down(only=report.started)


@pytest.fixture(scope="session")
def test_topics(local_stack: Settings) -> Iterator[set[str]]:
    """Topics the session's tests may have created, deleted at its end.

    In one admin call at the end, not per test: a broker left running between sessions would
    otherwise gather hundreds of 12-partition topics, and slow down with them.
    """
    names: set[str] = set()
    yield names
    delete_topics(local_stack, sorted(names))


@pytest.fixture
def unique_name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def test_settings(
    local_stack: Settings, unique_name: str, test_topics: set[str]
) -> Iterator[Settings]:
    """Settings of one test: its own key prefix, topics and consumer group.

    The API's guards are off here so that tests about counting can poll it freely; the tests of
    the guards themselves (tests/test_api_auth.py, test_api_ratelimit.py) switch them on.
    """
    settings = local_stack.model_copy(
        update={
            "key_prefix": f"test:{unique_name}",
            "call_events_topic": f"{unique_name}.call-events",
            "dead_letter_topic": f"{unique_name}.dead-letter",
            "worker_group": f"{unique_name}-group",
            "auth_enabled": False,
            "rate_limit_requests": 0,
            "rate_limit_key_requests": 0,
            # Several API processes run at once: those that need the operations port get a
            # free one (tests/support/api_process.py).
            "operations_port": 0,
        }
    )
    test_topics.update({settings.call_events_topic, settings.dead_letter_topic})
    yield settings
    delete_keys(settings.redis_url, settings.key_prefix)


@pytest.fixture
def key_layout(test_settings: Settings) -> KeyLayout:
    return KeyLayout(test_settings.key_prefix)


@pytest.fixture
def event_counter(test_settings: Settings) -> EventCounters:
    """Builds the engine's EventCounter on a Redis client, under the test's key prefix."""
    return EventCounters(test_settings)


@pytest.fixture
def access_lines() -> Iterator[list[dict[str, Any]]]:
    """The API's access-log lines of the test, parsed (api/telemetry.py)."""
    lines: list[dict[str, Any]] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(record.getMessage()))

    recorder = Recorder()
    logging.getLogger(ACCESS_LOGGER).addHandler(recorder)
    yield lines
    logging.getLogger(ACCESS_LOGGER).removeHandler(recorder)
