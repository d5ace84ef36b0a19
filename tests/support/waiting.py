"""Waiting on a condition, not for a time: a test goes on as soon as what it needs is true.

A settling ``sleep`` is either too short on a loaded machine (a flaky test) or too long
everywhere else (a slow one); polling a condition with a deadline is neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    """Poll until ``check`` returns something true; return it, or the last value at timeout."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    return value


def wait_for_http(url: str, timeout: float = 20) -> None:
    """Until ``url`` answers 200 (TimeoutError after ``timeout`` seconds)."""

    def answers() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    if not wait_for(answers, timeout):
        raise TimeoutError(f"{url} did not answer within {timeout} s")
