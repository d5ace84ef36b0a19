"""Redis losing its last writes (kill -9 inside the AOF fsync second, or a restore): healed.

A private Redis for each test (the shared one must not be killed under other tests). The loss
is made deterministic by restoring an older copy of Redis's data directory after kill -9:
exactly what a crash that lost its last writes leaves, only bigger.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from isales_stats.commands.stack.redis import RedisServer
from isales_stats.core.settings import Settings
from tests.support.detail import expected_detail, read_detail
from tests.support.faults import assert_fully_committed
from tests.support.kafka_topics import publish
from tests.support.private_redis import private_redis as own_redis
from tests.support.processes import ServiceProcess
from tests.support.streams import campaign_stream
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture
def private_redis(test_settings: Settings, tmp_path: Path) -> Any:
    with own_redis(test_settings, tmp_path / "stack") as (settings, server):
        yield settings, server


def snapshot(server: RedisServer, into: Path) -> None:
    """Stop Redis politely (it fsyncs its AOF), copy its data, start it again."""
    server.stop()
    shutil.copytree(server.home / "data", into)
    server.ensure_running()


def crash_and_restore(server: RedisServer, snapshot_dir: Path) -> None:
    """kill -9, then come back with only what the snapshot had: the later writes are lost."""
    server.process.stop(grace_seconds=0)  # SIGTERM then at once SIGKILL
    shutil.rmtree(server.home / "data")
    shutil.copytree(snapshot_dir, server.home / "data")
    server.ensure_running()


def test_counts_lost_by_redis_while_no_worker_runs_are_counted_again(
    private_redis: Any, tmp_path: Path
) -> None:
    settings, server = private_redis
    stream = campaign_stream(40_000, seed=21, now=datetime.now(UTC))
    first, second = stream[:20_000], stream[20_000:]

    publish(settings, first)
    with ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0):
        assert wait_for(lambda: read_detail(settings) == expected_detail(first), 60)
    snapshot(server, tmp_path / "snapshot")

    publish(settings, second)
    with ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0):
        assert wait_for(lambda: read_detail(settings) == expected_detail(stream), 60)
    # Kafka's committed offsets are at the end now; Redis is about to forget the second half.
    crash_and_restore(server, tmp_path / "snapshot")
    assert read_detail(settings) == expected_detail(first)

    with ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as worker:
        healed = wait_for(lambda: read_detail(settings) == expected_detail(stream), 60)
        assert healed, worker.log()
        assert_fully_committed(settings, worker.log)  # the seek back froze no commit


def test_a_running_worker_notices_the_loss_and_counts_again(
    private_redis: Any, tmp_path: Path
) -> None:
    settings, server = private_redis
    stream = campaign_stream(40_000, seed=22, now=datetime.now(UTC))
    first, second = stream[:20_000], stream[20_000:]

    with ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as worker:
        publish(settings, first)
        assert wait_for(lambda: read_detail(settings) == expected_detail(first), 60), worker.log()
        snapshot(server, tmp_path / "snapshot")  # the worker rides out a polite restart
        publish(settings, second)
        assert wait_for(lambda: read_detail(settings) == expected_detail(stream), 60), worker.log()

        crash_and_restore(server, tmp_path / "snapshot")
        # No event follows: the worker's periodic check finds the loss and reads again.
        healed = wait_for(lambda: read_detail(settings) == expected_detail(stream), 60)
        assert healed, worker.log()
        assert_fully_committed(settings, worker.log)  # the seek back froze no commit
        with Redis.from_url(settings.redis_url) as redis:
            assert redis.ping()
    assert "Redis lost counts" in worker.log()


def test_sigterm_of_redis_mid_stream_loses_nothing(private_redis: Any, tmp_path: Path) -> None:
    settings, server = private_redis
    stream = campaign_stream(60_000, seed=23, now=datetime.now(UTC))
    publish(settings, stream)
    with ServiceProcess(settings, "worker", log_dir=tmp_path, worker_metrics_port=0) as worker:
        assert wait_for(lambda: read_detail(settings), 60)
        server.stop()  # SIGTERM: Redis fsyncs and exits; the worker retries until it is back
        server.ensure_running()
        healed = wait_for(lambda: read_detail(settings) == expected_detail(stream), 90)
        assert healed, worker.log()
        assert_fully_committed(settings, worker.log)  # the seek back froze no commit
