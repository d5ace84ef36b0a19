"""Call events as producers publish them (JSON objects): the one factory the tests build with.

A test names the fields it is about and leaves the rest to plain defaults: VDN 1, campaign
C1, record d1, now; a ``call.result`` is a connected, final call x1. Whatever a stream
generator (tests/support/streams.py, strategies.py) or a single test builds, it builds here,
so that a change of the contract is made once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from isales_stats.core.events import EventKind
from tests.support.clock import now_ms

# The contract's names (plain strings, as they are in the JSON).
ADDED = EventKind.DATA_ADDED.value
CALL = EventKind.CALL_RESULT.value
REMOVED = EventKind.DATA_REMOVED.value

# The contract's JSON Schema (engine/call-event.schema.json), which tests validate against.
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "engine" / "call-event.schema.json"

_REQUIRED_DEFAULTS: dict[str, Any] = {"vdnId": 1, "campaignId": "C1", "dataId": "d1"}
_CALL_DEFAULTS: dict[str, Any] = {"callId": "x1", "callStatus": 6, "final": True}


def call_event(event_type: str, /, **fields: Any) -> dict[str, Any]:
    """One event of ``event_type``: the defaults, then ``fields`` (camelCase, as in the JSON).

    A field given as ``None`` is left out: ``batchId=None`` is a record without a batch, as
    most producers send it. ``occurredAt`` defaults to now (epoch ms).
    """
    event: dict[str, Any] = {"eventType": event_type, **_REQUIRED_DEFAULTS}
    if event_type == CALL:
        event.update(_CALL_DEFAULTS)
    event.update(fields)
    if "occurredAt" not in fields:
        event["occurredAt"] = now_ms()
    return {name: value for name, value in event.items() if value is not None}
