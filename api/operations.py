"""The operations port: what operators and Prometheus need, kept off the port clients reach.

``/metrics`` names the reasons of failed authentications and every route's traffic; ``/docs``
and ``/openapi.json`` describe every parameter. A tenant needs none of them, so they are served
on their own port (ISALES_OPERATIONS_PORT, 9103; 0: not at all), which a Kubernetes
NetworkPolicy keeps inside the cluster (deploy/k8s/networkpolicy.yaml). The probes answer on
both ports.

The operations app shares the public app's state (its Redis client, settings): it is another
door into the same process, not another service, and has no lifespan of its own.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from isales_stats.api.routes import health, metrics


def create_operations_app(public: FastAPI) -> FastAPI:
    """The app of the operations port of the process that serves ``public``."""
    operations = FastAPI(
        title=f"{public.title} (operations)",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    operations.state = public.state

    # The document describes the public port's interface, not this one's.
    @operations.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(public.openapi())

    @operations.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{public.title} - docs")

    operations.include_router(metrics.router)
    operations.include_router(health.router)
    return operations
