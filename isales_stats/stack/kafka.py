"""Kafka for the local stack: Apache Kafka's own broker, KRaft mode, jars from Maven Central.

No Docker engine and no Apache tarball are reachable where this project is built, but the
broker is published on Maven Central. ``deploy/kafka/pom.xml`` lists it; Maven copies the jars
once into the stack directory, and the broker runs as ``java -cp 'jars/*' kafka.Kafka``.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from isales_stats.settings import Settings
from isales_stats.stack.processes import (
    ManagedProcess,
    ServiceStatus,
    StackError,
    port_is_open,
    wait_until,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
BROKER_POM = REPOSITORY_ROOT / "deploy" / "kafka" / "pom.xml"

# Small and quick to start on two cores: the broker of a test stack needs no C2 compiler.
JVM_OPTIONS = ["-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]

# Without a configuration log4j2 prints errors only; keep the "Kafka Server started" line.
_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = info
"""


def broker_properties(
    node_id: int,
    broker_port: int,
    controller_port: int,
    voters: str,
    log_dir: Path,
    replication: int = 1,
) -> dict[str, str]:
    """server.properties of a combined broker+controller on loopback."""
    min_isr = str(min(2, replication))
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "default.replication.factor": str(replication),
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": str(replication),
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": str(replication),
        "share.coordinator.state.topic.min.isr": min_isr,
        # The defaults (50 partitions each) take long to create on two cores.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "unclean.leader.election.enable": "false",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "auto.create.topics.enable": "false",
    }


class KafkaBroker:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.kafka_port
        self.controller_port = self.port + 1
        self.jars = settings.stack_dir / f"kafka-{settings.kafka_version}" / "jars"
        self.home = settings.stack_dir / f"kafka-{self.port}"
        self.process = ManagedProcess(
            pid_file=self.home / "kafka.pid",
            log_file=self.home / "kafka.log",
            marker=str(self.home / "server.properties"),
        )

    def answering(self) -> bool:
        """A real metadata request, not just an open port."""
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=[f"127.0.0.1:{self.port}"],
                request_timeout_ms=3000,
            )
        except (KafkaError, OSError, ValueError):
            return False
        try:
            return bool(admin.describe_cluster().get("brokers"))
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def status(self) -> ServiceStatus:
        pid = self.process.pid()
        answering = self.answering() if pid or port_is_open("127.0.0.1", self.port) else False
        return ServiceStatus(
            self.name, f"kafka://127.0.0.1:{self.port}", pid, answering, self.process.log_file
        )

    def ensure_running(self) -> bool:
        """Start the broker unless one already answers there. True when we started it."""
        if port_is_open("127.0.0.1", self.port):
            if self.answering():
                return False
            if self.process.pid() is None:
                raise StackError(f"port {self.port} is taken by something that is not Kafka")
        if self.process.pid() is None:
            fetch_broker_jars(self.jars, self.settings.kafka_version)
            config = self._write_config()
            self._format_storage(config)
            java = shutil.which("java") or "java"
            self.process.start(
                [
                    java,
                    *JVM_OPTIONS,
                    f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                    "-cp",
                    f"{self.jars}/*",
                    "kafka.Kafka",
                    str(config),
                ]
            )
        if not wait_until(self.answering, timeout=90, still_starting=self._starting, interval=0.5):
            self.process.stop()
            raise StackError(
                f"Kafka did not answer a metadata request on port {self.port}; "
                f"see {self.process.log_file}:\n" + self.process.tail()
            )
        return True

    def stop(self) -> bool:
        return self.process.stop(grace_seconds=30)

    def _starting(self) -> bool:
        return self.process.pid() is not None

    def _write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "log4j2.properties").write_text(_LOG4J2)
        properties = broker_properties(
            node_id=1,
            broker_port=self.port,
            controller_port=self.controller_port,
            voters=f"1@127.0.0.1:{self.controller_port}",
            log_dir=self.home / "data",
        )
        config = self.home / "server.properties"
        config.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
        return config

    def _format_storage(self, config: Path) -> None:
        """Format the log directory once; a formatted one keeps its cluster id and topics."""
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if cluster_id.startswith("-"):  # the storage tool would read it as an option
            cluster_id = "A" + cluster_id[1:]
        run_java(
            self.jars, ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)]
        )


def run_java(jars: Path, arguments: list[str]) -> None:
    java = shutil.which("java") or "java"
    command = [java, *JVM_OPTIONS, "-cp", f"{jars}/*", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"{' '.join(arguments[:2])} failed:\n{result.stdout}{result.stderr}")


def fetch_broker_jars(jars: Path, version: str) -> None:
    """Copy the broker's jars from Maven Central into ``jars`` once (a marker file says done)."""
    done = jars / ".complete"
    if done.exists():
        return
    maven = shutil.which("mvn")
    if maven is None:
        raise StackError("Maven (mvn) is needed once to fetch the Kafka broker's jars")
    if shutil.which("java") is None:
        raise StackError("Java 17 or newer is needed to run the Kafka broker")
    print(f"Fetching Apache Kafka {version} from Maven Central (once)...", flush=True)
    staging = jars.with_name("jars.partial")
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        [
            maven, "-B", "-q", "-f", str(BROKER_POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-Dkafka.version={version}",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise StackError(f"mvn dependency:copy-dependencies failed:\n{result.stdout[-3000:]}")
    shutil.rmtree(jars, ignore_errors=True)
    staging.rename(jars)
    done.write_text(version + "\n")
