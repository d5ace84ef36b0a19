"""``isales-stats api``: the statistics API, served by uvicorn (``api/``)."""

from __future__ import annotations

import argparse
import sys

from isales_stats.commands.cli.command import Subcommands, add_command
from isales_stats.core.listening import cannot_listen
from isales_stats.core.settings import Settings

DESCRIPTION = """\
Serve the statistics API (the iSales statistics interface, push and the
call-result receiver) until SIGTERM or Ctrl-C, and on a second port the
operations app: /metrics, /docs and /openapi.json. Refuses to start (exit
status 2) when authentication is on without usable keys.

Reads ISALES_API_HOST and ISALES_API_PORT (unless --host, --port),
ISALES_OPERATIONS_HOST and ISALES_OPERATIONS_PORT, the ISALES_REDIS_*
settings, ISALES_AUTH_* (the signing keys), ISALES_CALLBACK_* (the receiver),
ISALES_RATE_LIMIT_*, ISALES_PUSH_* and ISALES_LIVE_PAGE_ENABLED
(docs/operations.md, "Configuration").

Example:
  ISALES_AUTH_KEYS='ak1:sk1-of-16-chars-or-more vdns=1;7' isales-stats api
"""


def register(commands: Subcommands) -> None:
    api = add_command(
        commands,
        "api",
        help="serve the statistics API with uvicorn",
        description=DESCRIPTION,
        run=run_api,
    )
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)
    api.add_argument(
        "--operations-port",
        type=int,
        default=None,
        help="the port of /metrics, /docs and /openapi.json (ISALES_OPERATIONS_PORT; 0: none)",
    )


def run_api(arguments: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from isales_stats.api.auth import AuthConfigurationError
    from isales_stats.api.main import create_app
    from isales_stats.api.runtime import tune_garbage_collector
    from isales_stats.api.server import serve

    if arguments.operations_port is not None:
        settings = settings.model_copy(update={"operations_port": arguments.operations_port})
    host = arguments.host or settings.api_host
    port = arguments.port or settings.api_port
    try:
        # Built here so that a refusal to start is a message, not uvicorn's traceback.
        app = create_app(settings)
    except AuthConfigurationError as error:
        print(f"isales-stats api: refusing to start: {error}", file=sys.stderr)
        return 2
    taken = busy_port(arguments, settings, host, port)
    if taken:
        print(f"isales-stats api: {taken}", file=sys.stderr)
        return 2
    # Everything the server needs is imported now: freeze it out of the collector's work.
    tune_garbage_collector()
    asyncio.run(serve(app, settings, host, port))
    return 0


def busy_port(
    arguments: argparse.Namespace, settings: Settings, host: str, port: int
) -> str | None:
    """Why the API or the operations port cannot be listened on, naming the option or the
    setting that chose it (uvicorn would log only the errno); None when both can."""
    public = cannot_listen(
        host,
        port,
        "--port" if arguments.port else "ISALES_API_PORT",
        "--host" if arguments.host else "ISALES_API_HOST",
    )
    if public or not settings.operations_port:
        return public
    return cannot_listen(
        settings.operations_host,
        settings.operations_port,
        "--operations-port" if arguments.operations_port is not None else "ISALES_OPERATIONS_PORT",
        "ISALES_OPERATIONS_HOST",
    )
