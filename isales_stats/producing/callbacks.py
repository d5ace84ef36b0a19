"""iSales result callbacks as call events: the field mapping, and the rule that decides ``final``.

iSales POSTs completed calls to a campaign's ``callBackUrl`` as a bare JSON array::

    [{"campaignId": "3", "sessionId": "1202_test013", "called": "60584", "vdnId": 11,
      "callTimeStr": "2020-08-30 20:00:00", "callStatus": 6, "failCode": "0",
      "callId": "0023-134864174", "recordPath": "...", "customField": "..."}]

Each element becomes one ``call.result`` event: ``sessionId`` is the record (dataId),
``customField`` its batch (batchId; empty or absent: no batch), ``callTimeStr`` the tenant's
local time, read in the VDN's zone (``Settings.time_zone_of``), ``callStatus`` 6 connected or 5
failed, ``failCode`` and ``callId`` as they are. ``called`` and ``recordPath`` are not counted.

``final`` ("no further attempt for this record") is not in the callback. It is decided here:

1. an explicit boolean ``final`` in the element wins (for a pusher that knows its retry policy);
2. otherwise a connected call is final;
3. otherwise a failed call is final when its ``failCode`` is in the no-retry list
   (``ISALES_CALLBACK_FINAL_FAIL_CODES``, default ``00538``: empty or wrong number, which no
   retry policy dials again);
4. otherwise it is not final: iSales may dial the record again.

A record whose last allowed retry failed with a retryable code is therefore not counted as
finished from callbacks alone; the pusher can say so with ``"final": true``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from datetime import datetime, tzinfo
from typing import Any

from isales_stats.core.events import (
    CONNECTED,
    MAX_VDN_ID,
    MIN_VDN_ID,
    CallEvent,
    InvalidEvent,
    event_from_json,
    occurred_at_ms,
)
from isales_stats.producing.publisher import validate_event

DEFAULT_FINAL_FAIL_CODES = ("00538",)

# Callback names of the contract's fields, for error messages in the pusher's own terms.
_CALLBACK_NAMES = {
    "dataId": "sessionId",
    "batchId": "customField",
    "occurredAt": "callTimeStr",
}
_LOCAL_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f")


class InvalidCallback(ValueError):
    """A callback body that cannot be turned into events; the message says where and why."""


def is_final(connected: bool, fail_code: str | None, final_fail_codes: Collection[str]) -> bool:
    """Rules 2 to 4 above: connected, or a failCode that no retry policy dials again."""
    return connected or (fail_code is not None and fail_code in final_fail_codes)


def call_results_to_events(
    body: object,
    zone_of: Callable[[int], tzinfo],
    final_fail_codes: Collection[str] = DEFAULT_FINAL_FAIL_CODES,
    *,
    future_tolerance_seconds: int | None = None,
    now: float | None = None,
) -> list[CallEvent]:
    """The events of a whole callback body, or ``InvalidCallback`` for the first bad element.

    With ``future_tolerance_seconds`` a call stamped further than that after ``now`` (epoch
    seconds, default the system clock) is refused too, as the worker would refuse its event.
    """
    if not isinstance(body, list):
        raise InvalidCallback("the body must be a JSON array of call results")
    clock = time.time() if now is None else now
    events = []
    for index, element in enumerate(body):
        try:
            event = call_result_event(element, zone_of, final_fail_codes)
            if future_tolerance_seconds is not None:
                validate_event(event, future_tolerance_seconds, clock)
        except InvalidEvent as error:
            message = _in_callback_terms(str(error))
            raise InvalidCallback(f"call result [{index}]: {message}") from None
        events.append(event)
    return events


def call_result_event(
    element: object,
    zone_of: Callable[[int], tzinfo],
    final_fail_codes: Collection[str] = DEFAULT_FINAL_FAIL_CODES,
) -> CallEvent:
    """One element of the callback array as a validated ``call.result`` event."""
    if not isinstance(element, dict):
        raise InvalidEvent("a call result must be a JSON object")
    vdn_id = _integer(element, "vdnId")
    if not MIN_VDN_ID <= vdn_id <= MAX_VDN_ID:
        raise InvalidEvent(f"vdnId must be {MIN_VDN_ID}..{MAX_VDN_ID}, got {vdn_id}")
    status = _integer(element, "callStatus")
    fail_code = element.get("failCode")
    if fail_code is not None and not isinstance(fail_code, str):
        raise InvalidEvent(f"failCode must be a string, got {_short(fail_code)}")
    explicit_final = element.get("final")
    if explicit_final is not None and not isinstance(explicit_final, bool):
        raise InvalidEvent(f"final must be true or false when given, got {_short(explicit_final)}")
    campaign_id = element.get("campaignId")
    if type(campaign_id) is int:  # a number in most iSales interfaces, a string in this one
        campaign_id = str(campaign_id)
    batch_id = element.get("customField")
    body: dict[str, Any] = {
        "eventType": "call.result",
        "vdnId": vdn_id,
        "campaignId": campaign_id,
        "dataId": element.get("sessionId"),
        "callId": element.get("callId"),
        "callStatus": status,
        "occurredAt": _occurred_at_ms(element.get("callTimeStr"), zone_of(vdn_id)),
        "final": (
            explicit_final
            if explicit_final is not None
            else is_final(status == CONNECTED, fail_code, final_fail_codes)
        ),
    }
    if fail_code is not None:
        body["failCode"] = fail_code
    if batch_id is not None and batch_id != "":
        body["batchId"] = batch_id
    try:
        return event_from_json(body)
    except InvalidEvent as error:
        raise InvalidEvent(_in_callback_terms(str(error))) from None


def _integer(element: dict[str, Any], name: str) -> int:
    value = element.get(name)
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    raise InvalidEvent(f"{name} must be an integer, got {_short(value)}")


def _occurred_at_ms(value: object, zone: tzinfo) -> int:
    """``callTimeStr`` (local time without a zone, ``yyyy-MM-dd HH:mm:ss``) in ``zone``."""
    if not isinstance(value, str):
        raise InvalidEvent(f"callTimeStr must be a string, got {_short(value)}")
    for layout in _LOCAL_TIME_FORMATS:
        try:
            local = datetime.strptime(value, layout)
        except ValueError:
            continue
        # An hour that a DST zone repeats reads as its first occurrence (fold=0).
        return occurred_at_ms(local.replace(tzinfo=zone), value)
    raise InvalidEvent(f"callTimeStr must look like 2020-08-30 20:00:00, got {_short(value)}")


def _in_callback_terms(message: str) -> str:
    name, _, rest = message.partition(" ")
    if name in _CALLBACK_NAMES:
        return f"{_CALLBACK_NAMES[name]} {rest}"
    return message


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
