"""A real ``redis-server`` as production runs it: TLS only, and only an ACL user with a password.

The certificates are made by tests/support/certificates.py: a CA, the server's certificate
for 127.0.0.1 signed by it, and a client certificate for mutual TLS. The server listens on a
TLS port only (``port 0``), asks clients for a certificate (``tls-auth-clients yes``) and knows
one user, ``isales``, with a password; the default user is off. ``settings_for`` gives the
project's settings that reach it (the password through a file, as a mounted secret would).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from isales_stats.core.settings import Settings
from tests.support.certificates import make_certificates
from tests.support.ports import free_port

USERNAME = "isales"
PASSWORD = "tls-test-password-7f3a"  # made up for the test, never a real one


@dataclass
class TlsRedis:
    port: int
    certificates: dict[str, Path]
    password_file: Path
    process: subprocess.Popen[bytes]
    log: Path

    def settings_for(self, base: Settings, **changes: object) -> Settings:
        """``base`` pointed at this server: rediss://, the ACL user and its password file, TLS."""
        return base.model_copy(
            update={
                "redis_url": f"rediss://127.0.0.1:{self.port}/0",
                "redis_username": USERNAME,
                "redis_password_file": self.password_file,
                "redis_ca_file": self.certificates["ca.crt"],
                "redis_cert_file": self.certificates["client.crt"],
                "redis_key_file": self.certificates["client.key"],
                **changes,
            }
        )

    def client(self) -> Redis:
        """A plain redis-py client of the test's own, as the ACL user over mutual TLS."""
        return Redis(
            host="127.0.0.1", port=self.port, ssl=True, username=USERNAME, password=PASSWORD,
            ssl_ca_certs=str(self.certificates["ca.crt"]),
            ssl_certfile=str(self.certificates["client.crt"]),
            ssl_keyfile=str(self.certificates["client.key"]), socket_timeout=5,
        )  # fmt: skip

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP: the server keeps its connections but answers nothing (a hung Redis)."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)


@contextmanager
def tls_redis(directory: Path) -> Iterator[TlsRedis]:
    certificates = make_certificates(directory / "certificates")
    password_file = directory / "redis-password"
    password_file.write_text(PASSWORD + "\n")
    port = free_port()
    log = directory / "redis-tls.log"
    command = [
        shutil.which("redis-server") or "redis-server",
        "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(certificates["server.crt"]),
        "--tls-key-file", str(certificates["server.key"]),
        "--tls-ca-cert-file", str(certificates["ca.crt"]),
        "--tls-auth-clients", "yes",
        "--user", "default", "off",
        "--user", USERNAME, "on", f">{PASSWORD}", "~*", "&*", "+@all", "-@admin",
        "--save", "", "--appendonly", "no", "--dir", str(directory),
        "--logfile", str(log),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = TlsRedis(port, certificates, password_file, process, log)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with server.client() as redis:
                    redis.ping()
                break
            except (RedisError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text() if log.exists() else ""
                    raise RuntimeError(f"redis-server with TLS did not start:\n{text}") from None
                time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
            process.wait(10)
