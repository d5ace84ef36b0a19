"""Admission: a signature is used once, and a caller keeps within its budgets.

Three checks, in one Redis script, so that two API processes never both admit the same
signature or the last free slot of a budget; and the API queues that script ahead of the read's
first round trip on one pipeline (``read_admitted``, with the engine's ``PipelinedRead``), so
that a signed request costs no round trip more than an unsigned one. Redis runs the admission
first; a refused request's replies are thrown away, and nothing past the read's first round trip
runs (a whole VDN's first is the cheap list of its campaigns).

1. **Replay.** A valid signature stays valid for the signing window (a stamp up to
   ``auth_window_seconds`` old or ``auth_future_skew_seconds`` ahead). The first use marks it
   seen; a second use is refused as a bad signature is (api/auth.py). The marker is keyed on
   the signature as parsed, so padding the header does not make a new one, and it expires at an
   absolute time: the stamp plus the window plus the skew allowed ahead. However late a request
   reaches Redis, and whichever API process's clock admitted it, the marker outlives every
   clock that is no further behind Redis' than that skew.
2. **Flow control per VDN** (the seed's rule): at most ``rate_limit_requests`` requests per
   caller and VDN in a five-minute window, then the seed's 429.
3. **A budget per caller over all VDNs** (``rate_limit_key_requests``): a key scoped to many
   VDNs, or an operator key, cannot multiply the per-VDN budget by walking its VDNs.

The result callbacks have a budget of their own (``callback_rate_limit_requests`` per token or
key in the same window, ``callback_gate``), in place of the two above: they write, and a
flood of them would reach Kafka.

A request refused by one budget is not counted in the other: a caller that hammers one VDN
keeps the rest of its budget for the others. Each window is started by the first request
counted in it and ended by Redis' own clock, so API hosts with skewed clocks still agree.
"""

from __future__ import annotations

import enum
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from fastapi import Request

from isales_stats.api.auth import Caller, authentication_failed
from isales_stats.api.errors import TOO_FREQUENT_MESSAGE, ApiError, ErrorCode
from isales_stats.api.metrics import AUTH_FAILURES, RATE_LIMITED
from isales_stats.core.keys import STATISTICS_INTERFACE, KeyLayout
from isales_stats.engine.reads import PipelinedRead, run_read
from isales_stats.engine.redis_connection import AnyRedis, LuaScript, run_pipeline

log = logging.getLogger(__name__)

T = TypeVar("T")

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# KEYS[1]  the signature's seen-marker       KEYS[2]  the caller's count for this VDN
# KEYS[3]  the caller's count over all VDNs  (all three carry the caller's hash tag)
#          (for a callback: KEYS[2] is the caller's callback count, KEYS[3] has no budget)
# ARGV[1]  when the signature stops being valid, Unix ms (0: the request is unsigned, no
#          replay check)
# ARGV[2]  the window, ms
# ARGV[3]  the per-VDN budget (0: none)     ARGV[4]  the budget over all VDNs (0: none)
# ARGV[5]  this request's own random id
# return   {verdict, ms until the refusing window ends}; verdicts as in Verdict below
#
# The marker holds the id of the request that used the signature and its answer, so that the
# same request run again (run_pipeline repeats a pipeline after NOSCRIPT) gets the same answer
# and is not counted twice, while another request with that signature is a replay.
#
# allow-oom (Redis 7's script flags, the shebang): Redis refuses writes when it is full (the
# counters are never evicted: maxmemory-policy noeviction), and the statistics must still be
# served then; these writes are a few bytes that expire within the window.
ADMIT = LuaScript(
    """#!lua flags=allow-oom
local signed = tonumber(ARGV[1]) > 0
if signed then
  local seen = redis.call('GET', KEYS[1])
  if seen then
    local request, verdict, remaining = string.match(seen, '^(.-):(%d+):(%d+)$')
    if request == ARGV[5] then
      return {tonumber(verdict), tonumber(remaining)}
    end
    return {1, 0}
  end
end
local function decided(verdict, remaining)
  if signed then
    redis.call('SET', KEYS[1], ARGV[5] .. ':' .. verdict .. ':' .. remaining, 'PXAT', ARGV[1])
  end
  return {verdict, remaining}
end
local window = tonumber(ARGV[2])
local budgets = {{KEYS[2], tonumber(ARGV[3]), 2}, {KEYS[3], tonumber(ARGV[4]), 3}}
for _, budget in ipairs(budgets) do
  local key, limit, verdict = budget[1], budget[2], budget[3]
  if limit > 0 and tonumber(redis.call('GET', key) or '0') >= limit then
    local remaining = redis.call('PTTL', key)
    if remaining < 0 then remaining = window end
    return decided(verdict, remaining)
  end
end
for _, budget in ipairs(budgets) do
  local key, limit = budget[1], budget[2]
  -- A count without expiry (the first of a window, or one left so by hand) starts the window.
  if limit > 0 and (redis.call('INCR', key) == 1 or redis.call('PTTL', key) < 0) then
    redis.call('PEXPIRE', key, window)
  end
end
return decided(0, 0)
"""
)


class Verdict(enum.IntEnum):
    ADMITTED = 0
    REPLAYED = 1
    VDN_BUDGET_SPENT = 2
    CALLER_BUDGET_SPENT = 3


class Decision(NamedTuple):
    verdict: Verdict
    retry_after_ms: int  # of the spent budget's window; 0 otherwise


class Admission:
    """Runs the three checks for a request; ``0`` for a budget switches that budget off."""

    def __init__(
        self,
        redis: AnyRedis,
        prefix: str,
        *,
        vdn_requests: int,
        caller_requests: int,
        window_seconds: int,
        signature_lifetime_seconds: int,
        callback_requests: int = 0,
    ) -> None:
        self.redis = redis
        self.layout = KeyLayout(prefix)
        self.vdn_requests = vdn_requests
        self.caller_requests = caller_requests
        self.callback_requests = callback_requests
        self.window_ms = window_seconds * 1000
        # From the stamp: the signing window plus the skew allowed ahead. An API process whose
        # clock is behind Redis' by up to that skew still refuses the signature as expired
        # before its marker is gone.
        self.signature_lifetime = timedelta(seconds=signature_lifetime_seconds)

    def gate(
        self,
        request: Request,
        caller: Caller,
        vdn_id: int,
        *,
        interface: str = STATISTICS_INTERFACE,
    ) -> AdmissionGate | None:
        """The checks of one read, to go ahead of its first round trip (``read_admitted``);
        None when there is nothing to check.

        ``interface`` names the read interface: each has a per-VDN budget of its own (the
        budget over all VDNs is the caller's, whatever it reads).
        """
        count = self.layout.flow_control(caller.identity, vdn_id, interface)
        return self._gate(request, caller, (count, self.vdn_requests), self.caller_requests)

    def callback_gate(self, request: Request, caller: Caller) -> AdmissionGate | None:
        """The checks of a result callback: the signature's first use, if signed, and the
        callback budget of its token or key; None when there is nothing to check."""
        count = self.layout.callback_flow_control(caller.identity)
        return self._gate(request, caller, (count, self.callback_requests), 0)

    def _gate(
        self,
        request: Request,
        caller: Caller,
        budget: tuple[str, int],
        caller_requests: int,
    ) -> AdmissionGate | None:
        """One request's gate: ``budget`` is the first count's key and limit, ``caller_requests``
        the limit of the caller's count over all VDNs (0 for none)."""
        count, limit = budget
        signed = caller.signature is not None
        if not signed and limit == caller_requests == 0:
            return None
        identity = caller.identity
        keys = [
            self.layout.signature_seen(identity, caller.signature or ""),
            count,
            self.layout.flow_control_all_vdns(identity),
        ]
        args = [
            self._signature_expiry_ms(caller) if signed else 0,
            self.window_ms,
            limit,
            caller_requests,
            secrets.token_hex(8),
        ]
        return AdmissionGate(request, keys, args)

    def _signature_expiry_ms(self, caller: Caller) -> int:
        """Unix ms at which the caller's signature stops being valid anywhere."""
        if caller.signed_at is None:
            raise ValueError("a signed caller carries the moment it was signed at")
        expires_at = caller.signed_at + self.signature_lifetime
        return (expires_at - _UNIX_EPOCH) // timedelta(milliseconds=1)  # exact, no float

    async def read_admitted(self, gate: AdmissionGate | None, read: PipelinedRead[T]) -> T:
        """``read``'s answer, its first round trip sent with the gate's checks ahead of it on
        one pipeline; raises as ``judge`` does, before anything of the read is answered or any
        later round trip of it runs."""
        if gate is None:
            return await run_read(self.redis, read)

        def queue(pipe: Any) -> None:
            gate.queue(pipe)
            read.queue(pipe)

        admitted, *replies = await run_pipeline(self.redis, [*gate.scripts, *read.scripts], queue)
        gate.judge(admitted)
        return await read.finish(replies)

    async def check(self, gate: AdmissionGate | None) -> None:
        """The gate's checks in a round trip of their own (a push subscription, which reads
        apart); returns when the request may be served, else raises as ``judge`` does."""
        if gate is not None:
            (reply,) = await run_pipeline(self.redis, gate.scripts, gate.queue)
            gate.judge(reply)

    async def decide(self, gate: AdmissionGate | None) -> Decision:
        """The gate's verdict in a round trip of its own (the callbacks, which read nothing)."""
        if gate is None:
            return Decision(Verdict.ADMITTED, 0)
        (reply,) = await run_pipeline(self.redis, gate.scripts, gate.queue)
        return gate.decision(reply)


@dataclass
class AdmissionGate:
    """One request's admission, queued into a pipeline ahead of what it guards."""

    request: Request
    keys: list[str]
    args: list[Any]

    @property
    def scripts(self) -> tuple[LuaScript, ...]:
        return (ADMIT,)

    def queue(self, pipe: Any) -> None:
        ADMIT.queue(pipe, self.keys, self.args)

    @staticmethod
    def decision(reply: Any) -> Decision:
        verdict, remaining_ms = reply
        return Decision(Verdict(int(verdict)), int(remaining_ms))

    def judge(self, reply: Any) -> None:
        """Returns when the request may be served; raises the 401 of a replay or the 429."""
        verdict, remaining_ms = self.decision(reply)
        if verdict is Verdict.REPLAYED:
            AUTH_FAILURES.labels("replayed").inc()
            raise authentication_failed(self.request, "replayed")
        if verdict is not Verdict.ADMITTED:
            raise too_frequent(verdict, remaining_ms)


def too_frequent(verdict: Verdict, remaining_ms: int) -> ApiError:
    """The seed's 429 for a spent budget, with the seconds until its window ends."""
    RATE_LIMITED.inc()
    budget = "VDN" if verdict is Verdict.VDN_BUDGET_SPENT else "all-VDN"
    log.info("flow control: the caller's %s budget is spent", budget)
    return ApiError(
        429,
        ErrorCode.TOO_FREQUENT,
        TOO_FREQUENT_MESSAGE,
        headers=retry_after(remaining_ms),
    )


def retry_after(remaining_ms: int) -> dict[str, str]:
    """The ``Retry-After`` header of a spent budget: whole seconds, rounded up, so that a client
    that waits this long finds a new window."""
    return {"Retry-After": str(max(1, math.ceil(remaining_ms / 1000)))}
