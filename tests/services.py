"""Our own processes for tests: a real worker or API started as a user would start them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from isales_stats.core.settings import Settings


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (for a process a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServiceProcess:
    """``isales-stats <command>`` in a child process with the given settings; log kept to a file."""

    def __init__(self, settings: Settings, *command: str, log_dir: Path, **overrides: Any) -> None:
        self.settings = settings.model_copy(update=overrides)
        self.command = [sys.executable, "-m", "isales_stats", *command]
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


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    """Poll until ``check`` returns something true; return it, or the last value at timeout."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    return value


def wait_for_http(url: str, timeout: float = 20) -> None:
    def answers() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    if not wait_for(answers, timeout):
        raise TimeoutError(f"{url} did not answer within {timeout} s")
