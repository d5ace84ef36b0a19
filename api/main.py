"""Builds the FastAPI application; nothing else lives here.

``create_app`` raises ``AuthConfigurationError`` when authentication is on without keys: the API
refuses to start rather than serve unauthenticated (``isales-stats api`` prints the reason).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from isales_stats.api.admission import Admission
from isales_stats.api.auth import (
    load_callback_tokens,
    load_key_grants,
    portable_signatures_warning,
)
from isales_stats.api.body_limit import BodyLimit
from isales_stats.api.errors import EXCEPTION_HANDLERS
from isales_stats.api.push.hub import ChangeHub
from isales_stats.api.routes import callbacks, health, live, read_interface_routers, webhooks
from isales_stats.api.telemetry import RequestTelemetry, configure_access_log
from isales_stats.core.settings import Settings, get_settings
from isales_stats.engine.changes import ChangeReader
from isales_stats.engine.context import CountingContext
from isales_stats.engine.redis_connection import connect, connect_pubsub, verify_access

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    grants = load_key_grants(settings)
    callback_tokens = load_callback_tokens(settings)
    if warning := portable_signatures_warning(settings):
        log.warning(warning)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await verify_access(settings)  # a wrong password or CA stops start-up, named
        redis = connect(settings)
        app.state.redis = redis
        context = CountingContext.from_settings(settings)
        app.state.context = context
        app.state.readers = {}  # each read interface's reader, made at its first request
        app.state.admission = Admission(
            redis,
            settings.key_prefix,
            vdn_requests=settings.rate_limit_requests,
            caller_requests=settings.rate_limit_key_requests,
            window_seconds=settings.rate_limit_window_seconds,
            signature_lifetime_seconds=settings.auth_window_seconds
            + settings.auth_future_skew_seconds,
            callback_requests=settings.callback_rate_limit_requests,
        )
        hub = ChangeHub(ChangeReader(redis, context), connect_pubsub(settings), settings)
        app.state.push_hub = hub
        await hub.start()
        try:
            async with callbacks.callback_lifespan(app, settings):
                yield
        finally:
            await hub.close()
            await redis.aclose()

    app = FastAPI(
        title="isales-stats",
        summary="Outbound call statistics of the current day, CC-iSales compatible.",
        version="0.1.0",
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        # On the operations port (api/operations.py), not here where clients come.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.secret_keys = {key: grant.secret_key for key, grant in grants.items()}
    app.state.key_scopes = {key: grant.scope for key, grant in grants.items()}
    app.state.callback_tokens = callback_tokens
    # Parsed once: every request looks its caller's address up in them (api/auth.py).
    app.state.trusted_proxies = settings.trusted_proxy_networks
    if settings.access_log:
        configure_access_log()
    # Inside the telemetry, so that a 413 is logged and counted like any answer.
    app.add_middleware(
        BodyLimit,
        callback_path=settings.callback_path,
        callback_max_bytes=settings.callback_max_body_bytes,
    )
    app.add_middleware(RequestTelemetry, log_requests=settings.access_log)
    # Every read interface, each from its description (api/interfaces.py).
    for router in read_interface_routers():
        app.include_router(router)
    app.include_router(health.router)
    app.include_router(callbacks.build_router(settings))
    app.include_router(live.build_router(settings))
    app.include_router(webhooks.router)
    return app
