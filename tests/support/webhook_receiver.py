"""A real webhook receiver in its own process, whose behaviour a test changes as it runs.

``python -m tests.support.webhook_receiver PORT RECORD CONTROL``: listens on 127.0.0.1:PORT;
every request is answered as the CONTROL file says at that moment ("ok": 200, "fail": 500,
"gone": 410, "hang SECONDS": answers 200 only after that long, too late for the notifier) and
appended to RECORD as one JSON line (headers, body, the answer, when it arrived), so that the
test reads what reached the receiver after the fact. ``Receiver`` starts, stops and restarts it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from isales_stats.core.settings import Settings
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for


def serve(port: int, record: Path, control: Path) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps connections alive, as real receivers do

        def do_POST(self) -> None:
            arrived = time.time()
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            mode = control.read_text().split()
            status = {"ok": 200, "fail": 500, "gone": 410}.get(mode[0], 200)
            line = {
                "arrived": arrived,
                "path": self.path,
                "answered": mode[0],
                "status": status,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": body.decode(),
            }
            with record.open("a") as out:  # on arrival: a held request shows at once
                out.write(json.dumps(line) + "\n")
            if mode[0] == "hang":
                time.sleep(float(mode[1]))
            try:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the notifier gave up waiting

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


@dataclass
class Receiver:
    """One receiver process, on a port kept across restarts."""

    settings: Settings
    directory: Path
    name: str

    def __post_init__(self) -> None:
        self.port = free_port()
        self.record = self.directory / f"{self.name}.jsonl"
        self.control = self.directory / f"{self.name}.control"
        self.record.touch()
        self.control.write_text("ok")
        self.process: ServiceProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{self.name}"

    def behave(self, mode: str) -> None:
        self.control.write_text(mode)

    def start(self) -> Receiver:
        import subprocess

        with (self.directory / f"{self.name}.log").open("ab") as log:
            self.process_handle = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.webhook_receiver",
                    str(self.port),
                    str(self.record),
                    str(self.control),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        import socket

        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        assert wait_for(listening, 20), f"receiver {self.name} did not listen"
        return self

    def stop(self) -> None:
        handle = getattr(self, "process_handle", None)
        if handle is not None and handle.poll() is None:
            handle.kill()
            handle.wait()

    def requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def accepted(self) -> list[dict[str, Any]]:
        """The requests it answered 200 in time (in the order they arrived)."""
        return [r for r in self.requests() if r["answered"] == "ok"]


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
