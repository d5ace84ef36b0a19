"""`isales-stats stack up | down | status` on a private stack (other ports, its own directory)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from isales_stats.commands.stack.processes import port_is_open
from isales_stats.core.settings import Settings
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import cli_command

pytestmark = pytest.mark.stack


def run_stack(action: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command("stack", action),
        env=environment, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_up_twice_is_harmless_and_down_leaves_nothing_behind(
    local_stack: Settings, tmp_path: Path
) -> None:
    stack_dir = tmp_path / "stack"
    kafka_port, redis_port = free_port_pair(), free_port()  # Kafka's controller: the next port
    # Share the jars already fetched for the main stack: this test is about processes.
    jars = local_stack.stack_dir / f"kafka-{local_stack.kafka_version}" / "jars"
    (stack_dir / f"kafka-{local_stack.kafka_version}").mkdir(parents=True)
    (stack_dir / f"kafka-{local_stack.kafka_version}" / "jars").symlink_to(jars)
    environment = {
        **os.environ,
        "ISALES_KAFKA_URL": f"kafka://127.0.0.1:{kafka_port}",
        "ISALES_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "ISALES_STACK_DIR": str(stack_dir),
    }
    try:
        first = run_stack("up", environment)
        assert first.returncode == 0, first.stderr
        assert "redis: started" in first.stdout
        assert "kafka: started" in first.stdout
        pids = [int((stack_dir / name).read_text()) for name in
                (f"redis-{redis_port}/redis.pid", f"kafka-{kafka_port}/kafka.pid")]  # fmt: skip

        second = run_stack("up", environment)
        assert second.returncode == 0, second.stderr
        assert "redis: already running" in second.stdout
        assert "kafka: already running" in second.stdout
        status = run_stack("status", environment)
        assert status.returncode == 0
        assert f"running (pid {pids[0]})" in status.stdout
        assert f"running (pid {pids[1]})" in status.stdout
    finally:
        down = run_stack("down", environment)
    assert down.returncode == 0
    assert "stopped: redis, kafka" in down.stdout or "stopped: kafka, redis" in down.stdout
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert not port_is_open("127.0.0.1", kafka_port)
    assert not port_is_open("127.0.0.1", redis_port)
    # The shared stack was not touched.
    assert port_is_open("127.0.0.1", local_stack.kafka_port)
    assert run_stack("status", environment).returncode == 3  # nothing answers now


def test_up_refuses_a_port_taken_by_something_else(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        environment = {
            **os.environ,
            "ISALES_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "ISALES_STACK_DIR": str(tmp_path / "stack"),
        }
        result = run_stack("up", environment)
    assert result.returncode != 0
    assert f"port {port} is taken" in result.stderr


def test_a_service_that_dies_at_start_is_reported_with_its_log_file(tmp_path: Path) -> None:
    """A redis-server that cannot start (a stand-in: real Redis cannot be made to fail so on
    demand without breaking the machine's own) makes `up` fail and name the log to read."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    broken = bin_dir / "redis-server"
    broken.write_text("#!/bin/sh\necho 'FATAL: cannot open the append-only file' >&2\nexit 1\n")
    broken.chmod(0o755)
    port = free_port()
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "ISALES_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "ISALES_STACK_DIR": str(tmp_path / "stack"),
    }
    result = run_stack("up", environment)
    assert result.returncode == 1, result.stdout
    assert str(tmp_path / "stack" / f"redis-{port}" / "redis.log") in result.stderr
    assert "cannot open the append-only file" in result.stderr
