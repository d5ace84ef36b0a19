"""A receiver of isales-stats notifications for integrators: verify, drop repeats, hand on.

    from isales_stats.webhooks_receiver import WebhookReceiver

    receiver = WebhookReceiver("whsec_...", handle=lambda notification: print(notification))
    # in any web framework, with the raw body and the request's headers:
    status = receiver.receive(body_bytes, dict(request.headers))   # 200, 400 or 401

The signature is checked with the ``standardwebhooks`` package (HMAC-SHA256 over
"id.timestamp.body", timestamps within five minutes); a notification whose ``webhook-id`` was
handled already is answered 200 and not handed on again (deliveries are at least once: a
retry after a lost answer repeats the id). Answer 2xx only once ``handle`` returned: any
other answer makes the notifier try again later (docs/notifications.md).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class WebhookReceiver:
    def __init__(
        self,
        secret: str,
        handle: Callable[[dict[str, Any]], None],
        remembered_ids: int = 100_000,
    ) -> None:
        self._webhook = Webhook(secret)
        self._handle = handle
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remembered = remembered_ids

    def receive(self, body: bytes, headers: dict[str, str]) -> int:
        """The HTTP status to answer: 200 (handled, or a repeat), 401 (signature), 400."""
        try:
            self._webhook.verify(body, headers, json_parse=False)
        except WebhookVerificationError:
            return 401
        notification_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        if notification_id in self._seen:
            return 200
        try:
            notification = json.loads(body)
        except ValueError:
            return 400
        self._handle(notification)  # an exception here: no 2xx, the notifier retries
        self._seen[notification_id] = None
        if len(self._seen) > self._remembered:
            self._seen.popitem(last=False)
        return 200
