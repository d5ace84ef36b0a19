"""POST {callback_path}: iSales pushes call results; each one becomes a ``call.result`` event.

The answer is ``{"retCode": "0", "retMsg": "success"}`` only once Kafka acknowledged every event
of the body (``acks="all"``). Anything else makes iSales push the same results again, which is
safe: counting ignores a callId it has already counted. So every failure answers non-200:
400 for a body that will never be valid (nothing is published), 401 for a caller that did not
prove who it is, 503 while Kafka does not acknowledge.

Protection: with ``auth_enabled`` (the default) or ``callback_tokens`` set, a request needs
either a valid AK/SK signature (the same keys and scheme as the statistics API) or one of the
tenants' tokens, as ``?token=`` in the callBackUrl or an ``X-Callback-Token`` header: iSales
itself can only be given a URL. Either way the caller may write only its own VDNs (the key's
or the token's scope): a body with any result outside them is refused whole, as a bad
signature is. With auth off and no token the endpoint is open (the local demo).

Flow control: each token, key (or, on an open endpoint, address) may push
``callback_rate_limit_requests`` bodies in the flow-control window (api/admission.py,
``callback_gate``); the next get ``{"retCode": "429", ...}`` with ``Retry-After``, which iSales
treats as any failure: it pushes again later. The budget is charged once the caller is proven
and before the body is parsed, so a flood costs a count in Redis, not a parse or a Kafka write.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from kafka.errors import KafkaError
from redis.exceptions import RedisError

from isales_stats.api.admission import Admission, Verdict, retry_after
from isales_stats.api.auth import Caller, client_address, verify_signature
from isales_stats.api.metrics import CALLBACKS_RATE_LIMITED, CALLBACKS_UNCHECKED, OUT_OF_SCOPE
from isales_stats.core.kafka_connection import KafkaNotAnswering, check_kafka_access
from isales_stats.core.settings import Settings
from isales_stats.core.signing import AuthenticationError
from isales_stats.core.tenants import EVERY_VDN, VdnScope
from isales_stats.producing.callbacks import InvalidCallback, call_results_to_events
from isales_stats.producing.publisher import AsyncEventPublisher

log = logging.getLogger(__name__)

# Bodies up to this size are checked on the event loop (a few hundred results: well under a
# millisecond); larger ones in a thread.
_ON_THE_LOOP = 64 * 1024
TOKEN_HEADER = "X-Callback-Token"  # noqa: S105 - a header's name; the token is a setting

_RESPONSE_SCHEMA = {
    "type": "object",
    "properties": {"retCode": {"type": "string"}, "retMsg": {"type": "string"}},
    "required": ["retCode", "retMsg"],
}
_REQUEST_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "vdnId": {"type": "integer"},
            "campaignId": {"type": "string"},
            "sessionId": {"type": "string"},
            "callId": {"type": "string"},
            "callTimeStr": {"type": "string", "example": "2020-08-30 20:00:00"},
            "callStatus": {"type": "integer", "enum": [5, 6]},
            "failCode": {"type": "string"},
            "customField": {"type": "string"},
            "final": {"type": "boolean"},
        },
        "required": ["vdnId", "campaignId", "sessionId", "callId", "callTimeStr", "callStatus"],
    },
}


@asynccontextmanager
async def callback_lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """The API process's producer: opened at the first callback, closed at shutdown.

    With TLS or SASL configured, start-up first logs in to Kafka once: a wrong password or CA
    stops the API here, named (KafkaAccessRefused), not at the first callback of the day. A
    broker that does not answer yet stops nothing: statistics need no Kafka, and callbacks
    answer 503 until it does."""
    try:
        await asyncio.to_thread(check_kafka_access, settings)
    except KafkaNotAnswering as error:
        log.warning("Kafka does not answer yet (%s): callbacks wait for it", error)
    publisher = AsyncEventPublisher(settings, timeout=settings.callback_ack_timeout_seconds)
    app.state.callback_publisher = publisher
    try:
        yield
    finally:
        await publisher.close()


def build_router(settings: Settings) -> APIRouter:
    """The callback route, at the configured path."""
    router = APIRouter(tags=["callbacks"])
    router.add_api_route(
        settings.callback_path,
        receive_call_results,
        methods=["POST"],
        response_model=None,
        responses={
            status: {"description": text, "content": {"application/json": {"schema": schema}}}
            for status, text, schema in (
                (200, "every result is on Kafka", _RESPONSE_SCHEMA),
                (400, "malformed body: nothing was published", _RESPONSE_SCHEMA),
                (401, "neither a valid signature nor the callback token", _RESPONSE_SCHEMA),
                (
                    429,
                    "the token's or key's callback budget is spent: push again",
                    _RESPONSE_SCHEMA,
                ),
                (503, "Kafka did not acknowledge in time: push again", _RESPONSE_SCHEMA),
            )
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _REQUEST_SCHEMA}},
            }
        },
    )
    return router


async def receive_call_results(request: Request) -> JSONResponse:
    """Receive iSales call results and publish them as call.result events."""
    settings: Settings = request.app.state.settings
    caller, body = await _proven_caller(request, settings)
    if caller is None:
        return _answer(401, "authentication failed")
    refusal = await _admission_refusal(request, caller)
    if refusal is not None:
        return refusal
    if body is None:
        body = await request.body()
    scope = caller.scope
    try:
        parsed = (
            await asyncio.to_thread(orjson.loads, body)
            if len(body) > _ON_THE_LOOP
            else (orjson.loads(body))
        )
    except orjson.JSONDecodeError as error:
        log.info("callback refused: not JSON: %s", error)
        return _answer(400, f"not JSON: {error}")
    if isinstance(parsed, list) and len(parsed) > settings.callback_max_results:
        log.info("callback refused: %d results", len(parsed))
        return _answer(413, f"more than {settings.callback_max_results} results in one body")
    try:
        # A large body is checked off the event loop, which other requests share.
        convert = functools.partial(
            call_results_to_events,
            parsed,
            settings.time_zone_of,
            settings.final_fail_codes,
            future_tolerance_seconds=settings.future_tolerance_seconds,
        )
        events = await asyncio.to_thread(convert) if len(body) > _ON_THE_LOOP else convert()
    except InvalidCallback as error:
        log.info("callback refused: %s", error)
        return _answer(400, str(error))
    if not all(scope.admits(event.vdn_id) for event in events):
        # All or nothing, and answered as a bad signature: nothing of another tenant is written.
        OUT_OF_SCOPE.inc()
        log.info("callback refused: a result for a VDN outside the key's scope")
        return _answer(401, "authentication failed")
    publisher: AsyncEventPublisher = request.app.state.callback_publisher
    try:
        await publisher.publish_all(events)
    except (KafkaError, TimeoutError, OSError) as error:
        log.warning("callback of %d results not acknowledged by Kafka: %r", len(events), error)
        return _answer(503, "call results not stored yet, push again")
    return _answer(200, "success", code="0")


def _answer(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"retCode": code or str(status), "retMsg": message}
    return JSONResponse(body, status_code=status, headers=headers)


async def _proven_caller(
    request: Request, settings: Settings
) -> tuple[Caller | None, bytes | None]:
    """Who pushes, by a token or a signature (None: neither holds), and the body when proving
    it needed the body. A token is checked before the body is read; only a signature needs the
    body (its hash), and a request with neither is refused unread."""
    caller = _token_caller(request, settings)
    if caller is not None:
        return caller, None
    if not (settings.auth_enabled and "authorization" in request.headers):
        return None, None
    body = await request.body()
    return _signed_caller(request, body), body


def _token_caller(request: Request, settings: Settings) -> Caller | None:
    """The caller of the token offered, with the token's VDNs (None: no valid token); or, with
    authentication off and no token configured (the local demo), the client's address, which
    may write every VDN."""
    tokens: list[tuple[bytes, VdnScope]] = request.app.state.callback_tokens
    if not settings.auth_enabled and not tokens:
        address = client_address(request, request.app.state.trusted_proxies)
        return Caller(f"address:{address}", scope=EVERY_VDN)
    offered = request.query_params.get("token") or request.headers.get(TOKEN_HEADER)
    if offered:
        # Every token is compared, in constant time: the time taken says nothing of which.
        matches = [
            (token, scope)
            for token, scope in tokens
            if hmac.compare_digest(offered.encode(), token)
        ]
        if matches:
            token, scope = matches[0]
            return Caller(f"token:{_token_digest(token)}", scope=scope)
    return None


def _token_digest(token: bytes) -> str:
    """What names a token in Redis' keys: a digest, so that no key spells the secret."""
    return hashlib.sha256(token).hexdigest()[:32]


def _signed_caller(request: Request, body: bytes) -> Caller | None:
    """The caller whose AK/SK key signed the request, with the key's VDNs (None: no valid
    signature)."""
    try:
        # The same checks as the statistics API, with the keys it loaded (api/auth.py).
        verified = verify_signature(request, body)
    except AuthenticationError as error:
        log.info("callback refused: %s", error.reason)
        return None
    return Caller.signed(verified, request.app.state.key_scopes[verified.access_key])


async def _admission_refusal(request: Request, caller: Caller) -> JSONResponse | None:
    """The answer refusing a replayed signature (401) or a caller over its callback budget
    (429); None when the callback may go on.

    Redis keeps the replay markers and the budgets, but results go to Kafka: when Redis does
    not answer, the callback goes on unchecked (logged, counted) rather than lose call results.
    A result pushed twice is counted once all the same (its callId is its identity).
    """
    admission: Admission = request.app.state.admission
    try:
        verdict, remaining_ms = await admission.decide(admission.callback_gate(request, caller))
    except (RedisError, OSError, TimeoutError) as error:
        CALLBACKS_UNCHECKED.inc()
        log.warning("callback admitted unchecked: Redis did not answer (%r)", error)
        return None
    if verdict is Verdict.REPLAYED:
        log.info("callback refused: replayed")
        return _answer(401, "authentication failed")
    if verdict is not Verdict.ADMITTED:
        CALLBACKS_RATE_LIMITED.inc()
        log.info("callback refused: the callback budget of %s is spent", caller.identity)
        return _answer(
            429, "too many callbacks, push again later", headers=retry_after(remaining_ms)
        )
    return None
