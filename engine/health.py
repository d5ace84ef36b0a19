"""The worker's HTTP port: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for the
orchestrator.

``/readyz`` answers 503 once this process has found events that Kafka deleted (retention)
before they were counted, naming the partitions and how many (engine/batch_delivery.py,
``_check_retention``). The worker goes on counting what is left, since stopping would lose
more; but its counts stay short for those days, and a metric and a log line are easy to miss.
A worker that is not ready shows as 0/1 in ``kubectl get pods`` and holds up a rolling update
until someone looks. A restart clears it (the group then resumes where this process left off,
which the log still holds): restarting is the acknowledgement. ``/healthz`` is liveness: the
process answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from isales_stats.engine import metrics

StartResponse = Callable[..., Any]


def events_lost_to_retention() -> dict[str, int]:
    """``topic/partition`` -> events lost, as this process counted them."""
    lost = {}
    for family in metrics.EVENTS_LOST_TO_RETENTION.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value > 0:
                lost[f"{sample.labels['topic']}/{sample.labels['partition']}"] = int(sample.value)
    return lost


# Set by engine/worker.py once Kafka answered and the topics exist: until then the port is
# open (alive) but not ready, while the worker waits for a Kafka that is not there yet.
KAFKA_REACHED = threading.Event()


def readiness() -> tuple[bool, str]:
    if not KAFKA_REACHED.is_set():
        return False, "waiting for Kafka (ISALES_KAFKA_URL): see the worker's log\n"
    lost = events_lost_to_retention()
    if not lost:
        return True, "ready\n"
    partitions = ", ".join(f"{where}: {count}" for where, count in sorted(lost.items()))
    return False, (
        "events were deleted by the topic's retention before they were counted and are "
        f"missing from the statistics ({partitions}); see the worker's log and "
        "docs/operations.md, 'Topics'. A restart clears this.\n"
    )


_prometheus = make_wsgi_app()


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/healthz":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"alive\n"]
    if path == "/readyz":
        ready, text = readiness()
        start_response(
            "200 OK" if ready else "503 Service Unavailable", [("Content-Type", "text/plain")]
        )
        return [text.encode()]
    return _prometheus(environ, start_response)  # type: ignore[no-any-return]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access line per probe and scrape."""


def serve(port: int, host: str = "0.0.0.0") -> WSGIServer:  # noqa: S104 (the pod's address)
    """Serve ``application`` on ``port`` from a daemon thread (as prometheus_client's own
    ``start_http_server`` does, with the two probes added)."""
    server = make_server(host, port, application, _ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="worker-http", daemon=True).start()
    return server
