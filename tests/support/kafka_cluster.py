"""A Kafka cluster of several nodes on loopback, replicated: for the fault tests to break.

tests/test_faults_kafka_node.py kills a node of it mid-stream and starts it again. The
product's stack runs one broker (isales_stats/commands/stack/kafka.py, ``KafkaBroker``); the
nodes here are the same broker, on the same jars, configured by the same helpers, with a
static KRaft quorum across them. The ports are free ones, chosen when the cluster is made:
fixed ones would collide with a second checkout's run or with a node an interrupted run left.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from isales_stats.commands.stack.kafka import (
    broker_command,
    broker_properties,
    brokers_seen,
    fetch_broker_jars,
    format_storage,
    new_cluster_id,
    write_broker_config,
)
from isales_stats.commands.stack.processes import (
    ManagedProcess,
    StackError,
    port_is_open,
    wait_until,
)
from isales_stats.core.settings import Settings
from tests.support.ports import free_port_pair


def cluster_ports(nodes: int) -> list[tuple[int, int]]:
    """(broker, controller) ports of ``nodes`` nodes on loopback: free, and none shared."""
    chosen: list[tuple[int, int]] = []
    while len(chosen) < nodes:
        broker = free_port_pair()
        taken = {port for pair in chosen for port in pair}
        if not {broker, broker + 1} & taken:
            chosen.append((broker, broker + 1))
    return chosen


# A killed node is noticed in seconds (defaults: 2 s heartbeats, 9 s session), so that its
# partitions get new leaders while the producers are still retrying.
_CLUSTER_PROPERTIES = {
    "broker.heartbeat.interval.ms": "1000",
    "broker.session.timeout.ms": "6000",
}


class KafkaNode:
    """One combined broker+controller of a ``KafkaCluster``: its ports, files and process."""

    def __init__(self, home: Path, node_id: int, broker_port: int, controller_port: int) -> None:
        self.node_id = node_id
        self.broker_port = broker_port
        self.controller_port = controller_port
        self.home = home
        self.config = home / "server.properties"
        self.process = ManagedProcess(
            pid_file=home / "kafka.pid", log_file=home / "kafka.log", marker=str(self.config)
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def running(self) -> bool:
        return self.process.pid() is not None


class KafkaCluster:
    """Several Kafka nodes on loopback, replicated: a real cluster to break on purpose.

    Every node is broker and controller (a static KRaft quorum). All nodes share one cluster
    id, are formatted once and started together: the quorum needs a majority to come up.
    Topics are replicated to every node by default, with ``min.insync.replicas`` 2, so one
    node can die while ``acks=all`` writes go on. Each process is remembered by a pid file
    under ``home``: ``stop`` ends everything the cluster started, and ``start`` first stops a
    cluster that an interrupted run left there. Each ``start`` begins with empty logs.
    """

    def __init__(
        self,
        home: Path,
        jars: Path,
        kafka_version: str,
        ports: Iterable[tuple[int, int]] | None = None,  # None: three nodes on free ports
        extra_properties: Mapping[str, str] | None = None,
    ) -> None:
        self.home = home
        self.jars = jars
        self.kafka_version = kafka_version
        self.nodes = {
            node_id: KafkaNode(home / f"node-{node_id}", node_id, broker, controller)
            for node_id, (broker, controller) in enumerate(
                cluster_ports(3) if ports is None else ports, start=1
            )
        }
        self.extra_properties = {**_CLUSTER_PROPERTIES, **(extra_properties or {})}

    @classmethod
    def for_settings(cls, settings: Settings, name: str = "kafka-cluster") -> KafkaCluster:
        """A cluster under the stack directory, on the jars the local stack already fetched."""
        return cls(
            settings.stack_dir / name,
            settings.stack_dir / f"kafka-{settings.kafka_version}" / "jars",
            settings.kafka_version,
        )

    @property
    def bootstrap_servers(self) -> list[str]:
        return [node.address for node in self.nodes.values()]

    @property
    def kafka_url(self) -> str:
        """The DSN for ``ISALES_KAFKA_URL`` (Faust's syntax: servers joined by ``;``)."""
        return "kafka://" + ";".join(self.bootstrap_servers)

    def start(self, timeout: float = 180) -> None:
        """Fresh logs, one cluster id, all nodes started; returns when all brokers are seen."""
        self.stop()
        for node in self.nodes.values():
            if port_is_open("127.0.0.1", node.broker_port) or port_is_open(
                "127.0.0.1", node.controller_port
            ):
                raise StackError(
                    f"port {node.broker_port} or {node.controller_port} is taken: "
                    "is another Kafka cluster running?"
                )
        fetch_broker_jars(self.jars, self.kafka_version)
        voters = ",".join(
            f"{node.node_id}@127.0.0.1:{node.controller_port}" for node in self.nodes.values()
        )
        cluster_id = new_cluster_id()
        try:
            for node in self.nodes.values():
                shutil.rmtree(node.home, ignore_errors=True)
                properties = broker_properties(
                    node_id=node.node_id,
                    broker_port=node.broker_port,
                    controller_port=node.controller_port,
                    voters=voters,
                    log_dir=node.home / "data",
                    replication=len(self.nodes),
                )
                write_broker_config(node.home, {**properties, **self.extra_properties})
                format_storage(self.jars, node.config, cluster_id)
            for node in self.nodes.values():
                node.process.start(broker_command(self.jars, node.config))
            self._wait_for_all_brokers(timeout)
        except BaseException:
            self.stop()
            raise

    def kill(self, node_id: int) -> None:
        """kill -9 one node, as in a crash: no controlled shutdown, no leadership handed over."""
        if not self.nodes[node_id].process.kill():
            raise StackError(f"Kafka node {node_id} was not running")

    def restart(self, node_id: int, timeout: float = 120) -> None:
        """Start a killed node again on its old logs; returns when the cluster sees it."""
        node = self.nodes[node_id]
        if not node.running:
            node.process.start(broker_command(self.jars, node.config))
        self._wait_for_all_brokers(timeout)

    def stop(self) -> list[int]:
        """Stop every node this cluster started (found by pid file); return their ids."""
        nodes = list(self.nodes.values())
        with ThreadPoolExecutor(len(nodes)) as pool:  # side by side: a quorum winds down together
            stopped = list(pool.map(lambda node: node.process.stop(20), nodes))
        return [node.node_id for node, done in zip(nodes, stopped, strict=True) if done]

    def log_tail(self, lines: int = 10) -> str:
        return "\n".join(
            f"--- node {node.node_id} ({node.process.log_file})\n{node.process.tail(lines)}"
            for node in self.nodes.values()
        )

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_for_all_brokers(self, timeout: float) -> None:
        def all_seen() -> bool:
            running = [node for node in self.nodes.values() if node.running]
            return all(brokers_seen([node.address]) == len(self.nodes) for node in running)

        def all_alive() -> bool:
            return all(node.running for node in self.nodes.values())

        if not wait_until(all_seen, timeout=timeout, still_starting=all_alive, interval=0.5):
            raise StackError(
                f"the Kafka cluster did not come up with {len(self.nodes)} brokers:\n"
                + self.log_tail()
            )
