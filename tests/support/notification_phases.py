"""Streams that notify, published in phases, and what a receiver made of them.

A phase is published and fully counted before the next one is sent. Each phase is built to
cross at most one status boundary per window and to finish a campaign at most once, its
crossings all caused by the phase's last events of each kind: then however a worker cuts the
phase into counting calls (a kill -9 and a replay included), the outbox gets the notifications
NotificationModel predicts when it counts the phase as one call.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson

from tests.support.clock import now_ms
from tests.support.events import ADDED, CALL, call_event

ABANDONED_IN_QUEUE = "00702"  # an abandon failCode (ISALES_ABANDON_FAIL_CODES)


def imports(vdn_id: int, campaign_id: str, records: list[str]) -> list[dict[str, Any]]:
    return [
        call_event(ADDED, vdnId=vdn_id, campaignId=campaign_id, dataId=record,
                   occurredAt=now_ms())
        for record in records
    ]  # fmt: skip


def calls(
    vdn_id: int,
    campaign_id: str,
    records: list[str],
    first: int,
    count: int,
    *,
    abandoned: bool = False,
    final: bool = False,
) -> list[dict[str, Any]]:
    """Calls ``first`` .. ``first + count - 1`` on ``records`` in turn: connected, or abandoned
    (failed with an abandon failCode, never final); callIds unique by their number and kind."""
    kind = {"callStatus": 5, "failCode": ABANDONED_IN_QUEUE} if abandoned else {}
    return [
        call_event(
            CALL,
            vdnId=vdn_id,
            campaignId=campaign_id,
            dataId=records[number % len(records)],
            callId=f"{'a' if abandoned else 'c'}{number}",
            final=final and not abandoned,
            occurredAt=now_ms(),
            **kind,
        )
        for number in range(first, first + count)
    ]


def first_deliveries(accepted: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per campaign, each notification as first delivered, in the order of arrival: id, type,
    timestamp, data (the body, with its id from the webhook-id header)."""
    seen: set[str] = set()
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for request in accepted:
        notification_id = request["headers"]["webhook-id"]
        if notification_id in seen:
            continue
        seen.add(notification_id)
        body = orjson.loads(request["body"])
        found[body["data"]["campaignId"]].append({"id": notification_id, **body})
    return found


def without_timestamps(notifications: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The worker's clock decided the timestamps; the rest is the model's to predict."""
    return [{**notification, "timestamp": ""} for notification in notifications]


def repeats_keep_their_id(accepted: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Bodies (type and data) delivered under more than one webhook-id: a notification
    written twice (empty when every repeated delivery carried its first's id)."""
    ids_of: dict[bytes, set[str]] = defaultdict(set)
    for request in accepted:
        body = orjson.loads(request["body"])
        key = orjson.dumps([body["type"], body["data"]], option=orjson.OPT_SORT_KEYS)
        ids_of[key].add(request["headers"]["webhook-id"])
    return {key.decode(): ids for key, ids in ids_of.items() if len(ids) > 1}


def noon_zone() -> str:
    """A fixed-offset zone in which it is now between 11:00 and 13:00 (Etc/GMT-N is UTC+N):
    no phase of a short test straddles its midnight, so today's window holds what the rolling
    ones hold."""
    offset = (12 - datetime.now(UTC).hour) % 24
    if offset > 14:
        offset -= 24
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"
