"""Flow control: at most N statistics requests per caller and VDN in a five-minute window.

The count lives in Redis, so every API process shares it: one counter per caller and VDN,
created by the first request of a window with the window as its time to live. Redis' own clock
ends the window, so API hosts with skewed clocks still agree. Counting and reading the time left
are one script, so two processes can never both see the last free slot.

The key name is spelled here, under the same prefix as engine/keys.py's layout, until KeyLayout
grows a method for it.
"""

from __future__ import annotations

import math

from isales_stats.api.auth import Caller
from isales_stats.api.errors import TOO_FREQUENT_MESSAGE, ApiError, ErrorCode
from isales_stats.api.metrics import RATE_LIMITED
from isales_stats.core.keys import KeyLayout
from isales_stats.engine.redis_connection import AnyRedis

# KEYS[1]  the caller's request counter for one VDN
# ARGV[1]  the window, in milliseconds
# return   {requests in the current window including this one, milliseconds until it ends}
COUNT_REQUEST_LUA = """
local count = redis.call('INCR', KEYS[1])
local remaining = redis.call('PTTL', KEYS[1])
if remaining < 0 then
  -- The first request of a window (or a counter left without expiry): the window starts now.
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  remaining = tonumber(ARGV[1])
end
return {count, remaining}
"""


class RateLimiter:
    """Admits a caller's request or raises the seed's 429; ``requests=0`` admits everything."""

    def __init__(self, redis: AnyRedis, prefix: str, requests: int, window_seconds: int) -> None:
        self.layout = KeyLayout(prefix)
        self.requests = requests
        self.window_ms = window_seconds * 1000
        self._count_request = redis.register_script(COUNT_REQUEST_LUA)

    async def admit(self, caller: Caller, vdn_id: int) -> None:
        if self.requests == 0:
            return
        key = self.layout.rate_limit(vdn_id, caller.identity)
        count, remaining_ms = await self._count_request(keys=[key], args=[self.window_ms])
        if int(count) <= self.requests:
            return
        RATE_LIMITED.inc()
        raise ApiError(
            429,
            ErrorCode.TOO_FREQUENT,
            TOO_FREQUENT_MESSAGE,
            # Whole seconds, rounded up: a client that waits this long finds a new window.
            headers={"Retry-After": str(max(1, math.ceil(int(remaining_ms) / 1000)))},
        )
