"""How every Kafka client of the project connects: one set of settings, two spellings.

The worker's consumer and dead-letter producer (Faust on aiokafka), the topic admin, the
callback receiver's producer, ``publish``, ``simulate``, the demo and the benchmarks
(kafka-python) all connect with the ``ISALES_KAFKA_*`` settings, as read here:
``client_options`` for a client of either library (the engine turns the same settings into
Faust's credentials), with one ``ssl.SSLContext`` for both, so that the two libraries cannot
disagree on what is trusted.

``check_kafka_access`` is the start-up check. Both libraries retry a refused TLS handshake or
SASL login as if the broker were down, logging at most a line per attempt, so a wrong password
or CA would look like a hang. The check connects once as the clients will and raises
``KafkaAccessRefused`` naming the setting at fault, within its timeout. A broker that accepts
connections but does not answer them yet (Kafka listens before it serves: the handshake or
login times out, or the connection drops before any answer) is ``KafkaNotAnswering``, which a
caller may retry; nothing accepting a connection at all returns quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from aiokafka import errors as aiokafka_errors
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest
from kafka.errors import KafkaError

from isales_stats.core.settings import Settings

# OpenSSL's verify codes for a certificate that does not name the host connected to.
_NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


DEFAULT_KAFKA_PORT = 9092


class KafkaAccessRefused(RuntimeError):
    """Kafka answered but would not let us in: the message names the setting to fix."""


class KafkaNotAnswering(KafkaError):  # type: ignore[misc]  # kafka-python has no types
    """Kafka accepted a connection but did not answer on it in time, or dropped it before any
    answer: a broker that is still starting looks like this. Worth another attempt, so it is
    kafka-python's ``KafkaError`` (retriable), which every caller already treats as "cannot
    reach Kafka"."""

    retriable = True


def kafka_address(server: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` of ISALES_KAFKA_URL as (host, port), the port
    9092 when not given. ``ValueError`` naming the entry when it is neither."""
    try:
        parts = urlsplit("//" + server)
        host, port = parts.hostname, parts.port
    except ValueError as error:
        raise ValueError(f"{server!r} in ISALES_KAFKA_URL is not host[:port]: {error}") from None
    if not host:
        raise ValueError(f"{server!r} in ISALES_KAFKA_URL names no host")
    return host, port or DEFAULT_KAFKA_PORT


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL")


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """What TLS trusts and presents (None without TLS): the broker's certificate must chain to
    ISALES_KAFKA_CA_FILE (the system's CAs when unset) and name the host unless
    ISALES_KAFKA_CHECK_HOSTNAME is off; ISALES_KAFKA_CERT_FILE and _KEY_FILE are ours."""
    if not uses_tls(settings):
        return None
    ca_file = str(settings.kafka_ca_file) if settings.kafka_ca_file else None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise KafkaAccessRefused(f"ISALES_KAFKA_CA_FILE ({ca_file}): {error}") from error
    context.check_hostname = settings.kafka_check_hostname
    if settings.kafka_cert_file and settings.kafka_key_file:
        try:
            context.load_cert_chain(settings.kafka_cert_file, settings.kafka_key_file)
        except (OSError, ssl.SSLError) as error:
            raise KafkaAccessRefused(
                f"ISALES_KAFKA_CERT_FILE / ISALES_KAFKA_KEY_FILE ({settings.kafka_cert_file}, "
                f"{settings.kafka_key_file}): {error}"
            ) from error
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of a client of either library (KafkaProducer, KafkaAdminClient,
    KafkaConsumer; AIOKafkaConsumer, AIOKafkaProducer): both spell these options alike."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if uses_sasl(settings):
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_username,
            "sasl_plain_password": settings.kafka_password_value(),
        }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context  # kafka-python then ignores its other ssl_* options
    return options


def check_kafka_access(settings: Settings, timeout: float = 10.0) -> None:
    """Connect to the first broker that answers as our clients will: our own TLS handshake
    (its errors say which certificate failed), then a connection as aiokafka makes them (SASL
    login, API versions). ``KafkaAccessRefused`` names the setting at fault (a certificate
    that fails verification, a refused login: no retry mends those); ``KafkaNotAnswering``
    when the broker accepted the connection but the handshake or login timed out or the
    connection dropped before an answer (a broker still starting: try again). Nothing
    accepting a connection at all returns quietly, and so does PLAINTEXT, which has nothing to
    refuse."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return
    for server in settings.kafka_bootstrap_servers:
        host, port = kafka_address(server)
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError:
            continue
        with sock:
            if uses_tls(settings):
                _check_tls(settings, sock, host, server, timeout)
        _check_login(settings, server, (host, port), timeout)
        return


def _check_tls(
    settings: Settings, sock: socket.socket, host: str, server: str, timeout: float
) -> None:
    context = ssl_context(settings)
    if context is None:
        return
    trusted = str(settings.kafka_ca_file or "the system's CAs")
    try:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            # TLS 1.3 refuses a client certificate after our side has finished: wait a moment
            # for that alert (a broker that accepted us just waits for a request).
            tls.settimeout(min(timeout, 0.5))
            with contextlib.suppress(TimeoutError):
                tls.recv(1)
    except ssl.SSLCertVerificationError as error:
        if error.verify_code in _NAME_MISMATCH:
            raise KafkaAccessRefused(
                f"Kafka's certificate at {server} does not name {host} "
                f"({error.verify_message}): connect by a name it holds, or set "
                "ISALES_KAFKA_CHECK_HOSTNAME=false"
            ) from error
        raise KafkaAccessRefused(
            f"Kafka's certificate at {server} is not trusted by ISALES_KAFKA_CA_FILE "
            f"({trusted}): {error.verify_message}"
        ) from error
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as error:  # dropped mid-handshake
        raise _not_answering(settings, server, "closed the connection during TLS", error) from error
    except ssl.SSLError as error:
        if "CERTIFICATE" in (error.reason or "").upper() or "ALERT" in str(error).upper():
            raise KafkaAccessRefused(
                f"Kafka at {server} refused our TLS client certificate "
                f"(ISALES_KAFKA_CERT_FILE / ISALES_KAFKA_KEY_FILE): {error.reason or error}"
            ) from error
        raise KafkaAccessRefused(
            f"TLS with Kafka at {server} failed (ISALES_KAFKA_SECURITY_PROTOCOL="
            f"{settings.kafka_security_protocol}: is that listener TLS?): {error}"
        ) from error
    except OSError as error:  # timed out, reset: accepted but not serving (yet)
        raise _not_answering(settings, server, "did not finish TLS", error) from error


def _check_login(settings: Settings, server: str, address: tuple[str, int], timeout: float) -> None:
    """One connection as aiokafka makes them (TLS, SASL handshake and login): it reports a
    refused login at once, where both clients' bootstraps retry it until they time out.

    Until the connection is made (API versions, SASL login) a timeout or a dropped connection
    means a broker not answering yet; once it answered, dropping our first request is a
    refusal (a SASL listener does that to a client that did not log in)."""
    host, port = address
    options = client_options(settings)
    del options["bootstrap_servers"]
    answered = False

    async def login() -> None:
        nonlocal answered
        try:
            connection = await asyncio.wait_for(create_conn(host, port, **options), timeout)
            answered = True
            try:  # a SASL listener answers API versions before a login, but nothing else
                await asyncio.wait_for(connection.send(MetadataRequest([])), timeout)
            finally:
                connection.close()
        finally:
            # A transport lets go of its socket in a callback, refused or not: run it before
            # the loop ends (else an unclosed-transport warning, and a socket left to the GC).
            await asyncio.sleep(0.01)

    try:
        _run(login())
    except aiokafka_errors.SaslAuthenticationFailed as error:
        raise KafkaAccessRefused(
            f"Kafka at {server} refused user {settings.kafka_username!r} with "
            f"{settings.kafka_sasl_mechanism}: check ISALES_KAFKA_USERNAME and "
            f"ISALES_KAFKA_PASSWORD (or ISALES_KAFKA_PASSWORD_FILE): {error}"
        ) from error
    except aiokafka_errors.UnsupportedSaslMechanismError as error:
        raise KafkaAccessRefused(
            f"Kafka at {server} does not offer ISALES_KAFKA_SASL_MECHANISM="
            f"{settings.kafka_sasl_mechanism}: {error}"
        ) from error
    except TimeoutError as error:
        raise _not_answering(settings, server, "did not answer", error) from error
    except (aiokafka_errors.KafkaConnectionError, OSError) as error:
        if not answered:
            raise _not_answering(settings, server, "dropped the connection", error) from error
        raise _refused_login(settings, server, timeout, error) from error
    except aiokafka_errors.KafkaError as error:
        raise _refused_login(settings, server, timeout, error) from error


def _refused_login(
    settings: Settings, server: str, timeout: float, error: BaseException
) -> KafkaAccessRefused:
    return KafkaAccessRefused(
        f"Kafka at {server} did not let us in within {timeout:.0f} s: is its listener "
        f"ISALES_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}, and does it want "
        f"a client certificate (ISALES_KAFKA_CERT_FILE)? {error!r}"
    )


def _not_answering(
    settings: Settings, server: str, what: str, error: BaseException
) -> KafkaNotAnswering:
    return KafkaNotAnswering(
        f"Kafka at {server} accepted a connection but {what} ({type(error).__name__}): "
        f"starting, or not a {settings.kafka_security_protocol} listener "
        "(ISALES_KAFKA_SECURITY_PROTOCOL)?"
    )


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run ``coroutine`` to its end from sync code, on this thread unless a loop runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()
