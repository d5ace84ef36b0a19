"""Why a process cannot listen where its settings say, in the settings' words.

A server that cannot bind its port fails with ``[Errno 98] Address already in use`` deep in a
traceback (or a log line of uvicorn's), which says neither which of the process's ports it
was nor which setting chose it: ``listen_failure`` says both, and ``cannot_listen`` tries a
port before the server does, as uvicorn binds it (``SO_REUSEADDR``, IPv6 for a host with a
colon).
"""

from __future__ import annotations

import errno
import socket


def listen_failure(
    error: OSError, host: str, port: int, port_setting: str, host_setting: str | None = None
) -> str:
    """One line: ``port 8000 is in use (ISALES_API_PORT)``, or what else stopped the bind
    (an address not of this machine, a port below 1024), naming both settings."""
    if error.errno == errno.EADDRINUSE:
        return f"port {port} is in use ({port_setting})"
    settings = f"{host_setting}, {port_setting}" if host_setting else port_setting
    return f"cannot listen on {host}:{port} ({settings}): {error.strerror or error}"


def cannot_listen(host: str, port: int, port_setting: str, host_setting: str) -> str | None:
    """``listen_failure``'s line if ``host:port`` cannot be bound right now, else None (port 0,
    any free port, always can)."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return listen_failure(error, host, port, port_setting, host_setting)
    return None
