"""What ``python -m isales_stats`` says about its own settings, as an operator runs it.

A misspelled ``ISALES_*`` variable used to be ignored without a word (the default won); a
malformed one printed pydantic's multi-line report; a port in use printed uvicorn's or the
socket's errno without saying which setting chose the port. Each is one line on stderr now,
naming the variable.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from isales_stats.core.settings import Settings
from isales_stats.core.settings_check import misspelled_settings
from tests.support.processes import run_cli

API_AUTH_OFF = {"ISALES_AUTH_ENABLED": "false"}


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.strip()]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.stack
def test_a_misspelled_variable_is_named_with_the_setting_it_was_meant_to_be(
    test_settings: Settings,
) -> None:
    done = run_cli(
        test_settings, "campaigns", "list", "--vdn", "1", environment={"ISALES_API_PROT": "8001"}
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in error_lines(done) if "ISALES_API_PROT" in line]
    assert warnings == [
        "isales-stats: warning: ISALES_API_PROT is not a setting and is ignored: "
        "did you mean ISALES_API_PORT?"
    ], done.stderr


def test_every_real_setting_and_the_tests_own_knobs_pass_without_a_word() -> None:
    names = [*Settings().as_environment(), "ISALES_FAULT_SEED", "PATH", "isales_api_port"]
    assert misspelled_settings(names) == []
    assert misspelled_settings(["ISALES_REDIS_UR", "ISALES_NOTHING_LIKE_IT"]) == [
        "ISALES_NOTHING_LIKE_IT is not a setting and is ignored: "
        "see docs/operations.md, 'Configuration'",
        "ISALES_REDIS_UR is not a setting and is ignored: did you mean ISALES_REDIS_URL?",
    ]


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("ISALES_API_PORT", "80x", "valid integer"),
        ("ISALES_KAFKA_SECURITY_PROTOCOL", "TLS", "'SASL_SSL'"),
        ("ISALES_DEFAULT_TIME_ZONE", "Mars/Olympus", "no time zone"),
        ("ISALES_ACCESS_LOG", "maybe", "valid boolean"),
    ],
)
def test_a_malformed_variable_is_one_line_and_exit_status_2(
    variable: str, value: str, said: str
) -> None:
    done = run_cli(Settings(), "api", environment={variable: value})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "pydantic" not in done.stderr
    [line] = error_lines(done)
    assert line.startswith(f"isales-stats: {variable}={value!r}: "), line
    assert said in line
    assert f"(for example {variable}=" in line


@pytest.mark.stack
@pytest.mark.parametrize("setting", ["ISALES_API_PORT", "ISALES_OPERATIONS_PORT"])
def test_a_busy_api_port_names_its_setting(
    setting: str, taken_port: int, test_settings: Settings
) -> None:
    # The other port is 0: any free one.
    ports = {"ISALES_API_PORT": "0", "ISALES_OPERATIONS_PORT": "0", setting: str(taken_port)}
    done = run_cli(test_settings, "api", environment={**API_AUTH_OFF, **ports}, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert error_lines(done) == [f"isales-stats api: port {taken_port} is in use ({setting})"]


@pytest.mark.stack
def test_a_busy_worker_metrics_port_names_its_setting(
    taken_port: int, test_settings: Settings, tmp_path: Path
) -> None:
    done = run_cli(
        test_settings,
        "worker",
        environment={"ISALES_WORKER_METRICS_PORT": str(taken_port)},
        timeout=60,
    )
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr
    assert error_lines(done) == [
        f"isales-stats worker: port {taken_port} is in use (ISALES_WORKER_METRICS_PORT)"
    ]
