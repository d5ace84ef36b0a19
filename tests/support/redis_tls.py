"""A real ``redis-server`` as production runs it: TLS only, and only an ACL user with a password.

The certificates are made for the test by ``openssl``: a CA, the server's certificate for
127.0.0.1 signed by it, and a client certificate for mutual TLS. The server listens on a TLS
port only (``port 0``), asks clients for a certificate (``tls-auth-clients yes``) and knows one
user, ``isales``, with a password; the default user is off. ``settings_for`` gives the project's
settings that reach it (the password through a file, as a mounted secret would).
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
from tests.support.ports import free_port

USERNAME = "isales"
PASSWORD = "tls-test-password-7f3a"  # made up for the test, never a real one


def openssl(*arguments: str | Path) -> None:
    subprocess.run(["openssl", *map(str, arguments)], check=True, capture_output=True)


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / name for name in ("ca.crt", "ca.key")}
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *curve, "-keyout", paths["ca.key"], "-out", paths["ca.crt"],
            "-days", "2", "-subj", "/CN=isales-stats test CA")  # fmt: skip
    uses = {
        "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for name, extensions in uses.items():
        key, request, certificate = (directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        extension_file = directory / f"{name}.ext"
        extension_file.write_text(extensions)
        openssl("req", "-new", *curve, "-keyout", key, "-out", request,
                "-subj", f"/CN=isales-stats test {name}")  # fmt: skip
        openssl("x509", "-req", "-in", request, "-CA", paths["ca.crt"], "-CAkey", paths["ca.key"],
                "-CAcreateserial", "-out", certificate, "-days", "2",
                "-extfile", extension_file)  # fmt: skip
        paths[f"{name}.key"], paths[f"{name}.crt"] = key, certificate
    return paths


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
        "--user", USERNAME, "on", f">{PASSWORD}", "~*", "&*", "+@all",
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
