"""Who is calling: the AK/SK request signature (``isales_stats.core.signing``) checked per request,
and whether the key may see the VDN asked for (its scope, ``isales_stats.core.tenants``).

Authentication is on unless ``ISALES_AUTH_ENABLED=false`` says otherwise; with it on and no keys,
or a key without a scope, the API refuses to start (``load_key_grants`` raises). With it off,
the caller is its client address, which is what flow control then counts by, and sees every VDN.

A VDN outside the key's scope is answered exactly as a bad signature is (401, the same
envelope and text): a caller learns nothing about other tenants, not even that a VDN exists.
The refusal is counted (``isales_api_out_of_scope_total``) and noted in the access log, and it
comes before flow control, so it costs the victim's budget nothing.

Beyond the signature itself (api/admission.py adds its first use): ``host`` must be among the
signed headers, so a signature made for one deployment does not pass at another, and when
ISALES_API_PUBLIC_HOSTS names the hosts the API is reached by, the signed value must be one of
them. Secret keys shorter than ISALES_AUTH_MIN_SECRET_KEY_LENGTH stop start-up.

With authentication off, the caller is its address: the peer's, or, when the peer is one of
ISALES_TRUSTED_PROXIES, the nearest untrusted address of ``X-Forwarded-For``. Anyone else's
``X-Forwarded-For`` is ignored (a client could otherwise pick a fresh budget per request).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from isales_stats.api.errors import AUTHENTICATION_FAILED_MESSAGE, ApiError, ErrorCode
from isales_stats.api.metrics import AUTH_FAILURES, OUT_OF_SCOPE
from isales_stats.core.settings import IPNetwork, Settings
from isales_stats.core.signing import (
    AUTH_SCHEME,
    Authenticated,
    AuthenticationError,
    KeyGrant,
    authenticate_request,
    decode_query,
    parse_key_grants,
)
from isales_stats.core.tenants import EVERY_VDN, VdnScope, parse_scoped_tokens

NO_KEYS_MESSAGE = (
    "authentication is on (ISALES_AUTH_ENABLED=true, the default) but no keys are configured: "
    "set ISALES_AUTH_KEYS='ak1:sk1 vdns=1;7[,ak2:sk2 vdns=10-20...]' or "
    "ISALES_AUTH_KEYS_FILE=/path/to/keys, or switch authentication off explicitly with "
    "ISALES_AUTH_ENABLED=false (local demos only)"
)

# Declares the header to the OpenAPI document (the lock in /docs); the checking happens below.
authorization_header = APIKeyHeader(
    name="Authorization",
    scheme_name=AUTH_SCHEME,
    description=(
        "auth-v2/{AK}/{timestamp}/{signedHeaders}/{signature}: an HMAC-SHA256 signature of the "
        "request with the secret key of AK (a worked example: docs/api.md, section "
        '"Authentication").'
    ),
    auto_error=False,
)


class AuthConfigurationError(Exception):
    """The API must not start: authentication is on but its keys are missing or unusable."""


# Signed, always: without it a signature would pass at any deployment that holds the key.
REQUIRED_SIGNED_HEADERS = ("host",)


@dataclass(frozen=True, slots=True)
class Caller:
    """Whom flow control counts: ``ak:{AK}``, or ``address:{ip}`` when authentication is off;
    the VDNs it may see; and the signature it came with (checked for replay), as parsed, with
    the moment it was signed at (which says until when it could be replayed)."""

    identity: str
    access_key: str | None = None
    scope: VdnScope = EVERY_VDN
    signature: str | None = None
    signed_at: datetime | None = None

    @classmethod
    def signed(cls, verified: Authenticated, scope: VdnScope) -> Caller:
        """The caller of a request whose signature passed."""
        return cls(
            f"ak:{verified.access_key}",
            verified.access_key,
            scope,
            verified.signature,
            verified.signed_at,
        )


def load_key_grants(settings: Settings) -> dict[str, KeyGrant]:
    """``{AK: KeyGrant}`` from ISALES_AUTH_KEYS and ISALES_AUTH_KEYS_FILE; ``{}`` with auth off.

    Raises ``AuthConfigurationError`` with a message fit for an operator (it names no secret),
    also for a key issued without a VDN scope.
    """
    if not settings.auth_enabled:
        return {}
    try:
        keys = parse_key_grants(settings.auth_keys.get_secret_value())
    except ValueError as error:
        raise AuthConfigurationError(f"ISALES_AUTH_KEYS: {error}") from None
    if settings.auth_keys_file is not None:
        path = settings.auth_keys_file
        try:
            from_file = parse_key_grants(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise AuthConfigurationError(
                f"ISALES_AUTH_KEYS_FILE: cannot read {path}: {error.strerror}"
            ) from None
        except ValueError as error:  # also UnicodeDecodeError
            raise AuthConfigurationError(f"ISALES_AUTH_KEYS_FILE {path}: {error}") from None
        twice = sorted(keys.keys() & from_file.keys())
        if twice:
            raise AuthConfigurationError(
                f"access key {twice[0]!r} is in both ISALES_AUTH_KEYS and ISALES_AUTH_KEYS_FILE"
            )
        keys.update(from_file)
    if not keys:
        raise AuthConfigurationError(NO_KEYS_MESSAGE)
    unscoped = sorted(access_key for access_key, grant in keys.items() if grant.scope is None)
    if unscoped:
        raise AuthConfigurationError(
            f"access key {unscoped[0]!r} has no VDN scope: write it as 'AK:SK vdns=1;7;10-20' "
            "(the VDNs of its tenant), or 'AK:SK vdns=*' for an operator key that sees every VDN"
        )
    minimum = settings.auth_min_secret_key_length
    short = sorted(
        access_key for access_key, grant in keys.items() if len(grant.secret_key) < minimum
    )
    if short:
        raise AuthConfigurationError(
            f"the secret key of access key {short[0]!r} is shorter than {minimum} characters "
            "(ISALES_AUTH_MIN_SECRET_KEY_LENGTH): issue a longer, random one"
        )
    return keys


PORTABLE_SIGNATURES_WARNING = (
    "warning: ISALES_API_PUBLIC_HOSTS is empty, so a request signed for another deployment "
    "that holds the same key also passes here; set it to the host names clients reach this "
    "API by (host or host:port, comma-separated)"
)


def portable_signatures_warning(settings: Settings) -> str | None:
    """One line for the operator when signatures are checked but not bound to this deployment's
    host names (None when they are, or when signatures are off)."""
    if settings.auth_enabled and not settings.api_public_hosts:
        return PORTABLE_SIGNATURES_WARNING
    return None


def load_callback_tokens(settings: Settings) -> list[tuple[bytes, VdnScope]]:
    """ISALES_CALLBACK_TOKENS as (token, the VDNs it may write); a token without a scope, or
    one that is malformed, raises ``AuthConfigurationError`` (naming it by its place)."""
    try:
        tokens = parse_scoped_tokens(settings.callback_tokens.get_secret_value())
    except ValueError as error:
        raise AuthConfigurationError(f"ISALES_CALLBACK_TOKENS: {error}") from None
    loaded = []
    for place, (token, scope) in enumerate(tokens, start=1):
        if scope is None:
            raise AuthConfigurationError(
                f"ISALES_CALLBACK_TOKENS: token {place} has no VDN scope: write it as "
                "'TOKEN vdns=100-109' (its tenant's VDNs), or 'TOKEN vdns=*' for every VDN"
            )
        loaded.append((token.encode(), scope))
    return loaded


def authentication_failed(request: Request, reason: str) -> ApiError:
    """The one 401 of this API, whatever ``reason`` (kept for the log and the operations
    port's metrics, never told to the caller)."""
    request.state.auth_failure = reason
    return ApiError(
        401,
        ErrorCode.AUTHENTICATION_FAILED,
        AUTHENTICATION_FAILED_MESSAGE,
        headers={"WWW-Authenticate": AUTH_SCHEME},
    )


def authorize_vdn(request: Request, caller: Caller, vdn_id: int) -> None:
    """401, as for a bad signature, when ``vdn_id`` is outside the caller's scope."""
    if caller.scope.admits(vdn_id):
        return
    OUT_OF_SCOPE.inc()
    raise authentication_failed(request, "vdn out of scope")


def verify_signature(request: Request, body: bytes) -> Authenticated:
    """Who signed a request with one of the API's keys, for one of its public hosts, and the
    signature as parsed; ``AuthenticationError`` (with its reason) otherwise.

    The signature is the parsed one, never the header as sent: the header is read trimmed of
    spaces and tabs, and the replay memory must see ``<header>`` and ``<header> `` as one."""
    settings: Settings = request.app.state.settings
    verified = authenticate_request(
        authorization=request.headers.get("authorization"),
        method=request.method,
        path=request.scope["path"],
        query=decode_query(request.scope["query_string"]),
        headers=request.headers,
        body=body,
        secret_keys=request.app.state.secret_keys,
        now=datetime.now(UTC),
        window=timedelta(seconds=settings.auth_window_seconds),
        future=timedelta(seconds=settings.auth_future_skew_seconds),
        required_headers=REQUIRED_SIGNED_HEADERS,
    )
    if not is_public_host(request.headers.get("host", ""), settings.api_public_hosts):
        raise AuthenticationError("wrong-host")
    return verified


def is_public_host(host: str, public_hosts: list[str]) -> bool:
    """Whether a Host header names one of ``public_hosts`` (any host when none is configured).

    An entry without a port matches that host on any port; host names compare case-blind.
    """
    if not public_hosts:
        return True
    name, port = _host_and_port(host)
    for entry in public_hosts:
        entry_name, entry_port = _host_and_port(entry)
        if entry_name == name and entry_port in ("", port):
            return True
    return False


def _host_and_port(host: str) -> tuple[str, str]:
    """``"Stats.example:8443"`` -> ``("stats.example", "8443")``; ``"[::1]:80"`` -> ``("[::1]",
    "80")``; no port gives ``""``."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest.removeprefix(":")
    name, _, port = host.partition(":")
    return name, port


def client_address(request: Request, trusted_proxies: tuple[IPNetwork, ...]) -> str:
    """The caller's address: the peer's, or behind trusted proxies the first address of
    ``X-Forwarded-For``, read from the right, that is not one of them."""
    peer = request.client.host if request.client else "unknown"
    if not trusted_proxies or not _is_trusted(peer, trusted_proxies):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted_proxies):
            return hop
    return peer if not hops else hops[0]


def _is_trusted(address: str, trusted_proxies: tuple[IPNetwork, ...]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False  # not an address (a name, garbage): never a proxy of ours
    return any(parsed in network for network in trusted_proxies)


async def authenticate_caller(
    request: Request,
    authorization: Annotated[str | None, Security(authorization_header)],
) -> Caller:
    """The caller of a statistics request; 401 when its signature does not hold.

    ``authorization`` declares the header to the OpenAPI document; ``verify_signature`` reads it.
    """
    del authorization
    settings: Settings = request.app.state.settings
    address = client_address(request, request.app.state.trusted_proxies)
    request.state.client_address = address  # the access log's "client"
    if not settings.auth_enabled:
        return Caller(f"address:{address}")
    try:
        verified = verify_signature(request, await request.body())
    except AuthenticationError as failure:
        AUTH_FAILURES.labels(failure.reason).inc()
        raise authentication_failed(request, failure.reason) from None
    request.state.access_key = verified.access_key
    return Caller.signed(verified, request.app.state.key_scopes[verified.access_key])
