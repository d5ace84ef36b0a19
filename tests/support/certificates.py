"""Certificates for a test's TLS servers, made by ``openssl``: a CA, a server certificate for
127.0.0.1 and localhost signed by it, and a client certificate for mutual TLS.

The server's certificate may also be used as a client's (``clientAuth``): a Kafka broker
connects to its own listener with it. EC keys on P-256, unencrypted (PKCS#8), valid two days.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*arguments: str | Path) -> None:
    subprocess.run(["openssl", *map(str, arguments)], check=True, capture_output=True)


def make_certificates(directory: Path) -> dict[str, Path]:
    """``ca.crt``, ``ca.key``, ``server.crt``, ``server.key``, ``client.crt``, ``client.key``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / name for name in ("ca.crt", "ca.key")}
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    # Python 3.13 verifies strictly (VERIFY_X509_STRICT): a CA needs its key usage, and a
    # certificate it signs the identifier of the CA's key.
    openssl("req", "-x509", *curve, "-keyout", paths["ca.key"], "-out", paths["ca.crt"],
            "-days", "2", "-subj", "/CN=isales-stats test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    identifiers = "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    uses = {
        "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth,clientAuth\n" + identifiers,
        "client": "extendedKeyUsage=clientAuth\n" + identifiers,
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
