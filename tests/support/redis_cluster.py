"""A Redis Cluster of three primaries on loopback (no replicas), for tests/test_redis_cluster.py.

The product's stack runs one Redis (isales_stats/commands/stack/redis.py); the engine reaches
a cluster through a ``redis+cluster://`` URL (engine/redis_connection.py), and this is the
cluster that shows it does. Each node is the stack's own ``RedisServer`` with cluster mode
switched on, on free ports: its client port and its cluster-bus port (``cluster-port``; the
default, client port + 10,000, can fall outside the port range for a port the kernel chose).
"""

from __future__ import annotations

import subprocess

import redis

from isales_stats.commands.stack.processes import StackError, wait_until
from isales_stats.commands.stack.redis import RedisServer
from isales_stats.core.settings import Settings
from tests.support.ports import free_port


class RedisClusterServers:
    """``nodes`` primaries under the settings' stack directory; ``url`` reaches the cluster."""

    def __init__(self, settings: Settings, nodes: int = 3) -> None:
        self.settings = settings
        self.ports = [free_port() for _ in range(nodes)]
        self.nodes = [self._node(port) for port in self.ports]

    def _node(self, port: int) -> RedisServer:
        return RedisServer(
            self.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"}),
            extra_config="cluster-enabled yes\ncluster-config-file nodes.conf\n"
            f"cluster-node-timeout 5000\ncluster-port {free_port()}\n",
        )

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        for node in self.nodes:
            node.ensure_running()
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        result = subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0 and "already" not in result.stdout + result.stderr:
            raise StackError(f"redis-cli --cluster create failed:\n{result.stdout}{result.stderr}")
        if not wait_until(self._cluster_ok, timeout=30, still_starting=lambda: True):
            raise StackError("the Redis Cluster did not reach cluster_state:ok")

    def grow(self) -> int:
        """One more primary, and a share of the slots moved to it with their keys
        (``redis-cli --cluster add-node``, then ``rebalance``): docs/capacity.md's procedure.
        Returns the new node's port."""
        port = free_port()
        node = self._node(port)
        node.ensure_running()
        self.ports.append(port)
        self.nodes.append(node)
        first = f"127.0.0.1:{self.ports[0]}"
        self._redis_cli("--cluster", "add-node", f"127.0.0.1:{port}", first)
        # The new node must be known to all before slots can move to it.
        if not wait_until(self._cluster_ok, timeout=30, still_starting=lambda: True):
            raise StackError("the new node did not join the Redis Cluster")
        self._redis_cli("--cluster", "rebalance", first, "--cluster-use-empty-masters",
                        "--cluster-yes")  # fmt: skip
        if not wait_until(self._cluster_ok, timeout=30, still_starting=lambda: True):
            raise StackError("the Redis Cluster did not reach cluster_state:ok after growing")
        return port

    def _redis_cli(self, *arguments: str) -> None:
        result = subprocess.run(["redis-cli", *arguments], capture_output=True, text=True,
                                check=False)  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"redis-cli {' '.join(arguments)}:\n{result.stdout}{result.stderr}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def _cluster_ok(self) -> bool:
        for port in self.ports:
            with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1) as client:
                if client.cluster("info").get("cluster_state") != "ok":
                    return False
        return True
