"""``isales-stats api`` as a real process on a free port, ready when the ``with`` block begins.

For the tests that are about processes: several APIs sharing flow control, uvicorn's access
lines, schemathesis and hostile clients over real HTTP, the whole path with a worker. The tests
of the app's behaviour serve it in-process instead (tests/support/app_client.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from isales_stats.core.settings import Settings
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for_http


class ApiProcess:
    """The API with ``settings`` (and ``overrides``) on a port of its own; ``url`` reaches it.

    Entering starts it and waits until ``/healthz`` answers; a process that does not get there
    is stopped and its log raised with the error. Leaving stops it (SIGTERM, then SIGKILL).
    """

    def __init__(self, settings: Settings, *, log_dir: Path, **overrides: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # /metrics, /docs and /openapi.json (api/operations.py)
        self.operations_port = free_port()
        self.operations_url = f"http://127.0.0.1:{self.operations_port}"
        self.service = ServiceProcess(
            settings,
            "api",
            "--port",
            str(self.port),
            "--operations-port",
            str(self.operations_port),
            log_dir=log_dir,
            **overrides,
        )

    @property
    def settings(self) -> Settings:
        return self.service.settings

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.service.process

    def start(self, ready_within: float = 20) -> ApiProcess:
        self.service.start()
        try:
            wait_for_http(f"{self.url}/healthz", timeout=ready_within)
            wait_for_http(f"{self.operations_url}/healthz", timeout=ready_within)
        except TimeoutError as error:
            self.service.stop()
            raise TimeoutError(f"{error}; its log:\n{self.service.log()}") from None
        return self

    def stop(self) -> None:
        self.service.stop()

    def log(self) -> str:
        return self.service.log()

    def __enter__(self) -> ApiProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
