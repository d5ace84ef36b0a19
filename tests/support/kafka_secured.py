"""The local stack's broker in its secured mode: SASL_SSL only, as a company runs Kafka.

One broker (the stack's own ``KafkaBroker`` with ``BrokerSecurity``) on free ports, its TLS
identity and CA made for the test (tests/support/certificates.py), client certificates
required, and the user ``isales`` created as a SCRAM user when the storage is formatted (and
known to PLAIN too). ``settings_for`` gives the project's settings that reach it: SASL_SSL,
SCRAM-SHA-512, the password through a file (as a mounted secret would give it), the CA, and
the client certificate and key.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from isales_stats.commands.stack.kafka import BrokerSecurity, KafkaBroker
from isales_stats.core.settings import Settings
from tests.support.certificates import make_certificates
from tests.support.ports import free_port_pair

USERNAME = "isales"
PASSWORD = "kafka-test-password-4c1e"  # made up for the test, never a real one
ADMIN_PASSWORD = "kafka-test-admin-9b2d"


@dataclass
class SecuredKafka:
    port: int
    certificates: dict[str, Path]
    password_file: Path

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def settings_for(self, base: Settings, **changes: object) -> Settings:
        """``base`` pointed at this broker with every security setting a client needs."""
        return Settings.model_validate(
            {
                **base.model_dump(),
                "kafka_url": self.url,
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "SCRAM-SHA-512",
                "kafka_username": USERNAME,
                "kafka_password_file": self.password_file,
                "kafka_ca_file": self.certificates["ca.crt"],
                "kafka_cert_file": self.certificates["client.crt"],
                "kafka_key_file": self.certificates["client.key"],
                **changes,
            }
        )


@contextmanager
def secured_kafka(directory: Path, base: Settings) -> Iterator[SecuredKafka]:
    certificates = make_certificates(directory / "certificates")
    keystore = directory / "certificates" / "broker.pem"  # key and certificate, one PEM file
    keystore.write_text(
        certificates["server.key"].read_text() + certificates["server.crt"].read_text()
    )
    password_file = directory / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    security = BrokerSecurity(
        keystore=keystore,
        truststore=certificates["ca.crt"],
        admin_password=ADMIN_PASSWORD,
        users={USERNAME: PASSWORD},
    )
    secured = SecuredKafka(free_port_pair(), certificates, password_file)
    broker = KafkaBroker(secured.settings_for(base), security)
    try:
        broker.ensure_running()
        yield secured
    finally:
        broker.stop()
        shutil.rmtree(broker.home, ignore_errors=True)
