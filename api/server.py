"""Serving the API with uvicorn: the public port and the operations port, in one process.

Two uvicorn servers share one event loop and one app state (api/operations.py). The public
server owns the process: it runs the lifespan (Redis), takes SIGTERM and SIGINT, and when it
stops the operations server stops with it. The operations server starts once the public one
is up, so that its probes never see an app without its Redis client.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from isales_stats.api.http_limits import ConnectionLimits, guarded_protocol
from isales_stats.api.operations import create_operations_app
from isales_stats.core.settings import Settings


class _FollowingServer(uvicorn.Server):
    """A server that leaves the signals to the public one (the last to install handlers
    would otherwise be the only one to hear them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _PublicServer(uvicorn.Server):
    """The public server: on its way down it ends the push streams first. uvicorn waits for
    every response to end before it stops, and a stream of Server-Sent Events never ends by
    itself (api/push/hub.py, ``end_streams``)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        hub = getattr(self.app.state, "push_hub", None)
        if hub is not None:
            hub.end_streams()
        await super().shutdown(sockets)


# How long a stopping server waits for the requests still running before it cancels them:
# the push streams end first (``_PublicServer``) and every other request is bounded by its
# own timeouts, so only a body that trickles on without end is left to this. Below the 30 s
# that Kubernetes and compose grant before SIGKILL, so the lifespan still closes Redis.
GRACEFUL_SHUTDOWN_SECONDS = 15


def _config(
    app: FastAPI, settings: Settings, host: str, port: int, port_name: str, **more: object
) -> uvicorn.Config:
    limits = ConnectionLimits.from_settings(settings)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # httptools, with bounds on a request's head and body and on connections
        # (api/http_limits.py).
        http=guarded_protocol(limits, port_name),
        # One more than the connections admitted: those are refused when they open, so this
        # only caps the requests still running on connections already gone.
        limit_concurrency=limits.max_connections + 1,
        timeout_keep_alive=5,  # an idle connection between two requests (uvicorn's default)
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        log_level="warning",
        access_log=False,  # the app writes its own, as JSON lines (ISALES_ACCESS_LOG)
        # uvicorn would believe X-Forwarded-For from 127.0.0.1; the app decides whom to
        # believe (ISALES_TRUSTED_PROXIES, api/auth.py).
        proxy_headers=False,
        **more,  # type: ignore[arg-type]
    )


async def serve(app: FastAPI, settings: Settings, host: str, port: int) -> None:
    """Serve ``app`` on ``host:port`` and, unless ISALES_OPERATIONS_PORT is 0, its operations
    app on the operations port, until SIGTERM or SIGINT."""
    public = _PublicServer(_config(app, settings, host, port, "public"), app)
    public_task = asyncio.create_task(public.serve())
    # uvicorn exposes start-up only as a flag, not an event to wait on.
    while not public.started and not public_task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if public_task.done() or not settings.operations_port:
        await public_task
        return
    operations = _FollowingServer(
        _config(
            create_operations_app(app),
            settings,
            settings.operations_host,
            settings.operations_port,
            "operations",
            lifespan="off",
        )
    )
    operations_task = asyncio.create_task(operations.serve())
    try:
        await public_task
    finally:
        operations.should_exit = True
        await operations_task
