"""Our own commands in child processes, started as a user would start them.

``cli_command`` (the package's own, ``isales_stats.commands.launch``) spells how: the
interpreter of this checkout's venv running ``python -m isales_stats``, so that the child runs
this tree's code whatever ``isales-stats`` on the PATH would be.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isales_stats.commands import cli_command as cli_command  # re-exported: tests use it
from isales_stats.core.settings import Settings


def run_cli(
    settings: Settings,
    *arguments: str,
    stdin: bytes | None = None,
    timeout: float = 120,
    environment: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``isales-stats ARGUMENTS`` to its end, ``settings`` (then ``environment``) its variables."""
    return subprocess.run(
        cli_command(*arguments),
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env={**os.environ, **settings.as_environment(), **(environment or {})},
        timeout=timeout,
        check=False,
    )


class ServiceProcess:
    """``isales-stats <command>`` in a child process with the given settings; log kept to a file."""

    def __init__(self, settings: Settings, *command: str, log_dir: Path, **overrides: Any) -> None:
        self.settings = settings.model_copy(update=overrides)
        self.command = cli_command(*command)
        self.log_path = log_dir / f"{command[0]}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        environment = {**os.environ, **self.settings.as_environment()}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        return self

    def kill(self) -> None:
        """kill -9: no goodbye, no commit, as in a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, grace_seconds: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def refused_start_up(settings: Settings, command: str) -> str:
    """Run ``isales-stats COMMAND`` with ``settings``; it must exit, not serve. Its output."""
    arguments = [command, "--port", "0"] if command == "api" else [command]
    result = run_cli(settings, *arguments, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    return output
