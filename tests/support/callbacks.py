"""iSales result callbacks as iSales writes them (isales-facts.md): the path they are POSTed
to, the answer that means "stored", and one element of the array."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from isales_stats.core.settings import Settings

PATH = Settings().callback_path
GMT8 = timezone(timedelta(hours=8))
SUCCESS = {"retCode": "0", "retMsg": "success"}


def local_time(minutes_ago: int = 0, zone: timezone = GMT8) -> str:
    moment = datetime.now(zone) - timedelta(minutes=minutes_ago)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def result(
    session: str | None, call: str | None, status: int = 6, fail_code: str = "0", **more: Any
) -> Any:
    """One element of the callback array, as iSales writes it (isales-facts.md)."""
    return {
        "campaignId": "3", "sessionId": session, "called": "60584", "vdnId": 11,
        "callTimeStr": more.pop("callTimeStr", local_time()), "callStatus": status,
        "failCode": fail_code, "callId": call, "recordPath": "/rec/1.wav",
        "customField": "batch-7", **more,
    }  # fmt: skip
