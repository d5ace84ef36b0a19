"""Webhook subscriptions and deliveries, as pure rules: no Redis, no network.

A subscription is where a tenant wants its notifications: an address, the VDNs it covers (a
subset of the creating key's scope), optionally the kinds it wants, and a secret made here
that signs every delivery the Standard Webhooks way (``whsec_`` + base64 of random bytes).
The notifier (engine/notifications/) and the subscription API (api/routes/webhooks.py) share
these rules: which addresses are acceptable, how long to wait before the next attempt, what
body a notification is POSTed as.
"""

from __future__ import annotations

import base64
import ipaddress
import random
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

# The subscription API (api/routes/webhooks.py; the client and the command line call it).
WEBHOOKS_PATH = "/rest/isales/v2/openapi/webhooks"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64
SUBSCRIPTION_ID_PREFIX = "sub_"
MAX_URL_LENGTH = 2048
MAX_VDNS = 1000


class AddressRefused(ValueError):
    """A subscription address the policy refuses; the message says why (shown to the caller)."""


@dataclass(frozen=True)
class Subscription:
    """One subscription as stored (its JSON in the subscriptions hash)."""

    id: str
    url: str
    vdns: tuple[int, ...]
    secret: str
    kinds: tuple[str, ...] = ()  # empty: every kind
    # The outbox entries it gets: those after this stream id (Redis' time at its creation),
    # so that a new subscription starts at the current end of every campaign's outbox.
    start: str = "0-0"
    created: str = ""
    access_key: str = ""
    disabled: str = ""  # why it was disabled (a 410 Gone); empty: active
    extra: dict[str, Any] = field(default_factory=dict)

    def covers(self, vdn_id: int, kind: str | None = None) -> bool:
        if self.disabled or vdn_id not in self.vdns:
            return False
        return kind is None or not self.kinds or kind in self.kinds

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: bytes | str) -> Subscription:
        raw = orjson.loads(text)
        raw["vdns"] = tuple(raw.get("vdns", ()))
        raw["kinds"] = tuple(raw.get("kinds", ()))
        return cls(**raw)

    def public(self) -> dict[str, Any]:
        """What the API lists: everything but the secret (shown once, at creation)."""
        return {
            "id": self.id,
            "url": self.url,
            "vdns": list(self.vdns),
            "kinds": list(self.kinds),
            "created": self.created,
            "disabled": self.disabled or None,
        }


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_subscription_id() -> str:
    return SUBSCRIPTION_ID_PREFIX + secrets.token_hex(12)


def check_url(url: str, *, allow_http: bool) -> tuple[str, int]:
    """The host and port of an acceptable address; ``AddressRefused`` otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise AddressRefused(f"url: at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise AddressRefused(f"url: {error}") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise AddressRefused("url: https only" if not allow_http else "url: http or https only")
    if not parts.hostname:
        raise AddressRefused("url: no host")
    if parts.username or parts.password:
        raise AddressRefused("url: no credentials in the address (the signature proves us)")
    if parts.fragment:
        raise AddressRefused("url: no fragment")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refused_address(address: str) -> str | None:
    """Why an IP address may not receive deliveries (None: it may): private, loopback,
    link-local, multicast, reserved or unspecified ranges."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    ):
        if flag:
            return f"{address} is a {name} address"
    return None


def check_addresses(host: str, addresses: Iterable[str]) -> list[str]:
    """The addresses ``host`` resolved to, when every one is public; ``AddressRefused`` names
    the first that is not (all must pass: a resolver could hand out either)."""
    resolved = list(dict.fromkeys(addresses))
    if not resolved:
        raise AddressRefused(f"url: {host} does not resolve")
    for address in resolved:
        reason = refused_address(address)
        if reason is not None:
            raise AddressRefused(f"url: {host} resolves to {reason}")
    return resolved


def retry_delay(attempts: int, first: float, longest: float, rng: random.Random) -> float:
    """Seconds before attempt ``attempts + 1``: full jitter over an exponential ceiling (AWS'
    "full jitter": receivers that failed together do not come back together)."""
    ceiling = min(longest, first * 2 ** min(attempts - 1, 60))
    return rng.uniform(0, ceiling)


def delivery_body(entry: dict[str, str]) -> bytes:
    """The POSTed body: ``{"type", "timestamp", "data"}`` (Standard Webhooks' shape)."""
    data = orjson.loads(entry["data"])
    return orjson.dumps({"type": entry["type"], "timestamp": entry["timestamp"], "data": data})


def stream_id_after(entry_id: str) -> str:
    """The smallest stream id after ``entry_id`` (for XTRIM MINID: keep what follows)."""
    milliseconds, _, sequence = entry_id.partition("-")
    return f"{milliseconds}-{int(sequence or 0) + 1}"


def stream_id_key(entry_id: str) -> tuple[int, int]:
    """A stream id as numbers, to compare ids."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)
