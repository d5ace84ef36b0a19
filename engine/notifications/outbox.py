"""A campaign's outbox, written from Python: one notification appended, as the contract says.

The counting script writes crossings in Lua, in the same atomic step as the counts; this is
the same format for writers outside a counting step (tests, benchmarks, a sweep in Python):
an entry with ``id``, ``type``, ``timestamp`` and ``data`` (OUTBOX_FIELDS), its id made of the
campaign and a sequence number kept in the campaign's notified hash, then the campaign named
in the due set and on the wake channel (docs/notifications.md, "The outbox").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from isales_stats.core.keys import KeyLayout
from isales_stats.core.notification_kinds import (
    NOTIFIED_FIELDS,
    OUTBOX_FIELDS,
    id_prefix,
    timestamp_of,
)
from isales_stats.engine.redis_connection import AnyRedis

# KEYS: notified hash, outbox stream. ARGV: sequence field, id prefix, then the entry's
# field names and values after the id (type, timestamp, data). The sequence and the entry
# are one step: a crash leaves both or neither.
_APPEND = """
local sequence = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local id = ARGV[2] .. sequence
local entry = {ARGV[3], id}
for i = 4, #ARGV do entry[#entry + 1] = ARGV[i] end
local entry_id = redis.call('XADD', KEYS[2], '*', unpack(entry))
return {id, entry_id}
"""


def due_member(vdn_id: int, campaign_id: str) -> str:
    return f"{vdn_id}:{campaign_id}"


def parse_due_member(member: str) -> tuple[int, str]:
    vdn, _, campaign = member.partition(":")
    return int(vdn), campaign


async def append_notification(
    redis: AnyRedis,
    layout: KeyLayout,
    vdn_id: int,
    campaign_id: str,
    kind: str,
    counters: dict[str, Any],
    decided_at: datetime | None = None,
) -> tuple[str, str]:
    """Append one notification to the campaign's outbox; its id and its stream entry id."""
    data = {"vdnId": vdn_id, "campaignId": campaign_id, **counters}
    moment = decided_at or datetime.now(UTC)
    _id_field, type_field, timestamp_field, data_field = OUTBOX_FIELDS
    reply = await redis.eval(
        _APPEND,
        2,
        layout.campaign_notified(vdn_id, campaign_id),
        layout.campaign_outbox(vdn_id, campaign_id),
        NOTIFIED_FIELDS["sequence"],
        id_prefix(vdn_id, campaign_id),
        OUTBOX_FIELDS[0],
        type_field,
        kind,
        timestamp_field,
        timestamp_of(moment.timestamp()),
        data_field,
        orjson.dumps(data).decode(),
    )
    notification_id, entry_id = (_text(part) for part in reply)
    member = due_member(vdn_id, campaign_id)
    # After the entry: a crash between the two leaves an entry the sweep finds (the contract).
    await redis.zadd(layout.outbox_due(), {member: int(moment.timestamp() * 1000)}, nx=True)
    await redis.publish(layout.outbox_wake_channel(), member)
    return notification_id, entry_id


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
