"""One delivery: an outbox entry POSTed to one subscription, signed the Standard Webhooks way,
to the address its host was checked to have.

The address is checked at each delivery (isales_stats/core/webhooks.py's policy: https only
unless allowed, no private, loopback, link-local or multicast address unless allowed), cached
for ``ADDRESS_CHECK_SECONDS``, and the connection goes to that very address: a DNS rebinding
between the check and the connection cannot reach an internal address. One HTTP client per
receiver host keeps its connections alive. The notifier (notifier.py) decides what to send and
when; ``replay_dead_letters`` sends the dead letters again through the same ``Deliverer``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from isales_stats.core.notification_kinds import OUTBOX_FIELDS
from isales_stats.core.settings import Settings
from isales_stats.core.webhooks import (
    AddressRefused,
    Subscription,
    check_addresses,
    check_url,
    delivery_body,
)

log = logging.getLogger(__name__)

USER_AGENT = "isales-stats-notifier"
# How long a host's checked address is used before it is resolved and checked again. The
# connection goes to the checked address, never to a name resolved anew (DNS rebinding).
ADDRESS_CHECK_SECONDS = 30.0


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt's outcome: delivered, or the failure's reason and HTTP status."""

    delivered: bool
    reason: str = ""
    status: int = 0


class Deliverer:
    """Sends one outbox entry to one subscription, signed, to its host's checked address.

    One HTTP client per receiver host (scheme, name, port), so that kept-alive connections are
    reused only for the host they were made for (its certificate's name, its checked address).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clients: dict[tuple[str, str, int], httpx.AsyncClient] = {}
        self.checked: dict[tuple[str, int], tuple[str, float]] = {}  # -> address, until
        self.signers: dict[str, Webhook] = {}

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()

    async def attempt(
        self, subscription: Subscription, entry: dict[str, str], deadline: float | None = None
    ) -> Attempt:
        """One attempt; ``deadline`` (``time.monotonic()``) is when the request must be over
        (the lease's end): a request cut off by it is given up as "lease", not as a failure."""
        timeout = self.settings.webhook_timeout_seconds
        cut_by_lease = False
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return Attempt(False, "lease")
            cut_by_lease = left < timeout
            timeout = min(timeout, left)
        try:
            client, target, headers, extensions = await self._pinned_target(subscription)
        except AddressRefused as refused:
            log.warning("subscription %s: %s", subscription.id, refused)
            return Attempt(False, "address")
        body = delivery_body(entry)
        signer = self.signers.get(subscription.secret)
        if signer is None:
            signer = self.signers[subscription.secret] = Webhook(subscription.secret)
        now = datetime.now(UTC)
        headers |= {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": entry[OUTBOX_FIELDS[0]],
            "webhook-timestamp": str(math.floor(now.timestamp())),
            "webhook-signature": signer.sign(entry[OUTBOX_FIELDS[0]], now, body),
        }
        try:
            async with asyncio.timeout(timeout):
                request = client.build_request(
                    "POST", target, content=body, headers=headers, extensions=extensions
                )
                response = await client.send(request, stream=True)
                await response.aclose()  # the receiver's body is not ours to read
        except (TimeoutError, httpx.TimeoutException):
            return Attempt(False, "lease" if cut_by_lease else "timeout")
        except (httpx.HTTPError, OSError) as error:
            log.info("subscription %s: %r", subscription.id, error)
            return Attempt(False, "connection")
        if 200 <= response.status_code < 300:
            return Attempt(True, status=response.status_code)
        if response.status_code == 410:
            return Attempt(False, "gone", 410)
        return Attempt(False, f"http_{response.status_code // 100}xx", response.status_code)

    async def _pinned_target(
        self, subscription: Subscription
    ) -> tuple[httpx.AsyncClient, str, dict[str, str], dict[str, Any]]:
        """The host's client, the URL with the host replaced by its checked address (a DNS
        rebinding between the check and the connection cannot reach an internal address), the
        Host header and, for https, the name the certificate must carry."""
        host, port = check_url(subscription.url, allow_http=self.settings.webhook_allow_http)
        address = await self._checked_address(host, port)
        parts = urlsplit(subscription.url)
        literal = f"[{address}]" if ":" in address else address
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
        client = self.clients.get((parts.scheme, host, port))
        if client is None:
            client = self.clients[(parts.scheme, host, port)] = httpx.AsyncClient(
                follow_redirects=False,
                timeout=self.settings.webhook_timeout_seconds,
                limits=httpx.Limits(max_connections=self.settings.notifier_max_in_flight),
            )
        target = parts._replace(netloc=netloc).geturl()
        return client, target, {"host": parts.netloc}, extensions

    async def _checked_address(self, host: str, port: int) -> str:
        """An address of ``host`` that passed the address policy within ADDRESS_CHECK_SECONDS."""
        now = time.monotonic()
        cached = self.checked.get((host, port))
        if cached is not None and cached[1] > now:
            return cached[0]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise AddressRefused(f"url: {host} does not resolve ({error})") from None
        addresses = [str(info[4][0]) for info in infos]
        if not self.settings.webhook_allow_private_addresses:
            addresses = check_addresses(host, addresses)
        self.checked[(host, port)] = (addresses[0], now + ADDRESS_CHECK_SECONDS)
        return addresses[0]
