"""The integrators' receiver: a signature made by the notifier's signer passes once per id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from isales_stats.core.webhooks import new_secret
from isales_stats.webhooks_receiver import WebhookReceiver


def _signed(secret: str, notification_id: str, body: bytes) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "webhook-id": notification_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(notification_id, now, body),
    }


def test_a_notification_is_verified_handed_on_once_and_a_forgery_refused() -> None:
    secret = new_secret()
    handled: list[dict[str, Any]] = []
    receiver = WebhookReceiver(secret, handled.append)
    body = b'{"type":"campaign.finished","timestamp":"2026-01-01T00:00:00.000Z","data":{}}'
    headers = _signed(secret, "msg_0123456789abcdef_1", body)
    assert receiver.receive(body, headers) == 200
    assert receiver.receive(body, headers) == 200  # a repeat: answered, not handed on
    assert [n["type"] for n in handled] == ["campaign.finished"]
    assert receiver.receive(body.replace(b"finished", b"released"), headers) == 401
    assert receiver.receive(body, _signed(new_secret(), "msg_x_2", body)) == 401
