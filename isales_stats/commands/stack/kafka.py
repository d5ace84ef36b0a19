"""Kafka for the local stack: Apache Kafka's own broker, KRaft mode, jars from Maven Central.

No Docker engine and no Apache tarball are reachable where this project is built, but the
broker is published on Maven Central. ``pom.xml`` beside this module (package data, so that
it is there in an installed wheel too) lists it; Maven copies the jars once into the stack
directory, and the broker runs as ``java -cp 'jars/*' kafka.Kafka``.

``KafkaBroker`` is the one-node broker of the local stack. The helpers below it (server
properties, storage formatting, the broker's command line, ``brokers_seen``) are shared with
the fault tests' several-node cluster, tests/support/kafka_cluster.py.

Its secured mode (``BrokerSecurity``) is a broker as a company runs one: a single SASL_SSL
listener for clients and between brokers, certificates the caller made (PEM files: the tests
make them with openssl), client certificates required, and SCRAM users written into the
storage when it is formatted, so that they exist before the broker first starts.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from isales_stats.commands.stack.processes import (
    ManagedProcess,
    ServiceStatus,
    StackError,
    port_is_open,
    wait_until,
)
from isales_stats.core.kafka_connection import client_options
from isales_stats.core.settings import Settings

BROKER_POM = files("isales_stats.commands.stack").joinpath("pom.xml")

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


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class BrokerSecurity:
    """What a secured broker needs: its TLS identity, the CA of its clients, and its users.

    ``keystore`` is one PEM file with the broker's unencrypted private key and its certificate
    (which must name 127.0.0.1 and allow client use too: the broker connects to itself over the
    same listener); ``truststore`` the CA that clients' certificates must chain to. Every user
    in ``users`` (name -> password) can log in with each of ``SASL_MECHANISMS``; ``admin`` is
    the one the broker itself uses.
    """

    keystore: Path
    truststore: Path
    admin_password: str
    users: Mapping[str, str] = field(default_factory=dict)
    admin: str = "admin"

    def all_users(self) -> dict[str, str]:
        return {self.admin: self.admin_password, **self.users}

    def properties(self) -> dict[str, str]:
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
        login = f'username="{self.admin}" password="{self.admin_password}"'
        plain_users = " ".join(f'user_{name}="{word}"' for name, word in self.all_users().items())
        return {
            "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": f"{scram} {login};",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": f"{scram} {login};",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": f"{plain} {login} {plain_users};",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.truststore),
            # ssl.client.auth alone applies to SSL listeners only, not to SASL_SSL ones.
            "listener.name.sasl_ssl.ssl.client.auth": "required",
        }

    def scram_arguments(self) -> list[str]:
        """StorageTool's ``--add-scram`` for every user and both SCRAM mechanisms."""
        arguments = []
        for name, word in self.all_users().items():
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                arguments += ["--add-scram", f"{mechanism}=[name={name},password={word}]"]
        return arguments


def broker_properties(
    node_id: int,
    broker_port: int,
    controller_port: int,
    voters: str,
    log_dir: Path,
    replication: int = 1,
    security: BrokerSecurity | None = None,
) -> dict[str, str]:
    """server.properties of a combined broker+controller on loopback (secured: SASL_SSL only)."""
    min_isr = str(min(2, replication))
    listener = "SASL_SSL" if security else "PLAINTEXT"
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": f"{listener}://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"{listener}://127.0.0.1:{broker_port}",
        "inter.broker.listener.name": listener,
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{listener}:{listener}",
        **(security.properties() if security else {}),
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

    def __init__(self, settings: Settings, security: BrokerSecurity | None = None) -> None:
        self.settings = settings
        self.security = security
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
        """A real metadata request, not just an open port (through TLS and SASL if secured)."""
        return brokers_seen([f"127.0.0.1:{self.port}"], self.client_options) >= 1

    @property
    def client_options(self) -> dict[str, object]:
        return client_options(self.settings) if self.security else {}

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
            self.process.start(broker_command(self.jars, config))
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
        properties = broker_properties(
            node_id=1,
            broker_port=self.port,
            controller_port=self.controller_port,
            voters=f"1@127.0.0.1:{self.controller_port}",
            log_dir=self.home / "data",
            security=self.security,
        )
        return write_broker_config(self.home, properties)

    def _format_storage(self, config: Path) -> None:
        """Format the log directory once; a formatted one keeps its cluster id and topics."""
        if (self.home / "data" / "meta.properties").exists():
            return
        extra = self.security.scram_arguments() if self.security else []
        format_storage(self.jars, config, new_cluster_id(), extra)


def brokers_seen(bootstrap_servers: list[str], options: Mapping[str, object] | None = None) -> int:
    """How many brokers a metadata request through ``bootstrap_servers`` reports (0: none).
    ``options``: kafka-python's, for a secured broker (client_options)."""
    # kafka-python leaks the socket of a refused connection: knock before asking.
    addresses = [server.rsplit(":", 1) for server in bootstrap_servers]
    if not any(port_is_open(host, int(port)) for host, port in addresses):
        return 0
    try:
        admin = KafkaAdminClient(
            **{**(options or {}), "bootstrap_servers": bootstrap_servers},
            request_timeout_ms=3000,
        )
    except (KafkaError, OSError, ValueError):
        return 0
    try:
        return len(admin.describe_cluster().get("brokers") or [])
    except (KafkaError, OSError):
        return 0
    finally:
        admin.close()


def new_cluster_id() -> str:
    """A random KRaft cluster id, as ``StorageTool random-uuid`` makes them."""
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if cluster_id.startswith("-"):  # the storage tool would read it as an option
        cluster_id = "A" + cluster_id[1:]
    return cluster_id


def write_broker_config(home: Path, properties: Mapping[str, str]) -> Path:
    """``server.properties`` and the log4j2 configuration of one node, in ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "log4j2.properties").write_text(_LOG4J2)
    config = home / "server.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    return config


def format_storage(
    jars: Path, config: Path, cluster_id: str, extra: list[str] | None = None
) -> None:
    command = ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)]
    run_java(jars, command + (extra or []))


def broker_command(jars: Path, config: Path) -> list[str]:
    """The command line of a broker whose files are next to ``config``."""
    java = shutil.which("java") or "java"
    log4j2 = config.parent / "log4j2.properties"
    # The JVM's pauses, beside the broker's log: a stall of every client at once is read here.
    gc_log = f"-Xlog:gc:file={config.parent / 'gc.log'}:time,uptime:filecount=2,filesize=10m"
    return [
        java, *JVM_OPTIONS, gc_log, f"-Dlog4j2.configurationFile={log4j2}",
        "-cp", f"{jars}/*", "kafka.Kafka", str(config),
    ]  # fmt: skip


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
    # Maven runs on a copy in the stack directory: an installed package may be read-only.
    pom = jars.with_name("broker-pom.xml")
    pom.parent.mkdir(parents=True, exist_ok=True)  # a fresh stack directory has no folders yet
    pom.write_text(BROKER_POM.read_text())
    result = subprocess.run(
        [
            maven, "-B", "-q", "-f", str(pom),
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
