"""Loopback ports for the processes a test starts: asked of the kernel, never written down.

A fixed port collides with a second checkout running its tests, with a developer's own
services, and with a previous run's process that has not let go yet; a port the kernel just
handed out is free right now.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (for a process a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_port_pair() -> int:
    """A free port whose next port is free too (a Kafka node's controller listens there)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")
