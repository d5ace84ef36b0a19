"""The real app served in-process: its lifespan running, reached through httpx's ASGI transport.

The same app, Redis and scripts as under uvicorn, without a process per test. The tests that
are about processes (several APIs sharing flow control, refusing to start, schemathesis over
HTTP) start real ones with tests/support/api_process.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from isales_stats.api.main import create_app
from isales_stats.api.operations import create_operations_app
from isales_stats.client import CONTENT_TYPE, STATISTICS_PATH, AkSkAuth
from isales_stats.core.settings import Settings

BASE_URL = "http://127.0.0.1:8000"  # never dialled: the transport hands requests to the app
JSON_HEADERS = {"Content-Type": CONTENT_TYPE}


def statistics_path(vdn_id: int | str) -> str:
    return STATISTICS_PATH.format(vdn_id=vdn_id)


@asynccontextmanager
async def serve(
    app_or_settings: FastAPI | Settings,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    client_address: str = "127.0.0.1",
    raise_app_exceptions: bool = True,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app (built from settings if need be), its lifespan running.

    An exception escaping the app fails the test, unless ``raise_app_exceptions`` is False: then
    the client sees the 500 the app's handler answered with, as a real client would.
    """
    app = app_or_settings if isinstance(app_or_settings, FastAPI) else create_app(app_or_settings)
    auth = AkSkAuth(access_key, secret_key) if access_key and secret_key else None
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(
            app=app, client=(client_address, 50000), raise_app_exceptions=raise_app_exceptions
        )
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers=JSON_HEADERS, auth=auth
        ) as client:
            yield client


@asynccontextmanager
async def serve_with_operations(
    settings: Settings, **options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of the public app and of its operations app (/metrics, /docs: api/operations.py),
    which shares the public app's state while its lifespan runs."""
    app = create_app(settings)
    async with serve(app, **options) as client:
        transport = httpx.ASGITransport(app=create_operations_app(app))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as operations:
            yield client, operations
