"""Webhook subscriptions: ``POST/GET/DELETE /rest/isales/v2/openapi/webhooks[/{id}]``.

Signed as every other interface (AK/SK), and scoped to the key's VDNs: a subscription covers
VDNs the key may see (any other is refused as a bad signature is), and a key lists and removes
only subscriptions whose VDNs are all within its scope. The secret that signs deliveries is
made here and returned once, by the POST. The address is checked at creation (https unless
ISALES_WEBHOOK_ALLOW_HTTP; no private, loopback, link-local or multicast address unless
ISALES_WEBHOOK_ALLOW_PRIVATE_ADDRESSES), and again by the notifier at each delivery.
docs/notifications.md.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from isales_stats.api.auth import authentication_failed
from isales_stats.api.dependencies import CallerDep, RedisDep, SettingsDep
from isales_stats.api.errors import ErrorCode, ParameterError
from isales_stats.core.events import MAX_VDN_ID, MIN_VDN_ID
from isales_stats.core.keys import KeyLayout
from isales_stats.core.notification_kinds import KINDS
from isales_stats.core.webhooks import (
    MAX_VDNS,
    WEBHOOKS_PATH,
    AddressRefused,
    check_addresses,
    check_url,
)
from isales_stats.engine.notifications.subscriptions import SubscriptionStore

router = APIRouter(tags=["webhooks"])


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _success(data: Any, status: int = 200) -> Response:
    return _json({"resultCode": "0", "resultDesc": "success", "data": data}, status)


async def _checked_address(url: Any, allow_http: bool, allow_private: bool) -> str:
    if not isinstance(url, str) or not url:
        raise ParameterError(ErrorCode.EMPTY_PARAMETER, "url is required")
    try:
        host, port = check_url(url, allow_http=allow_http)
        if not allow_private:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError:
                raise AddressRefused(f"url: {host} does not resolve") from None
            check_addresses(host, [str(info[4][0]) for info in infos])
    except AddressRefused as refused:
        raise ParameterError(ErrorCode.WRONG_VALUE, str(refused)) from None
    return url


def _vdns(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ParameterError(ErrorCode.EMPTY_PARAMETER, "vdns: a non-empty list of VDN ids")
    if len(value) > MAX_VDNS:
        raise ParameterError(ErrorCode.WRONG_VALUE, f"vdns: at most {MAX_VDNS}")
    if not all(type(v) is int and MIN_VDN_ID <= v <= MAX_VDN_ID for v in value):
        raise ParameterError(
            ErrorCode.WRONG_TYPE, f"vdns: integers from {MIN_VDN_ID} to {MAX_VDN_ID}"
        )
    return tuple(sorted(set(value)))


def _kinds(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise ParameterError(ErrorCode.WRONG_TYPE, "kinds: a list of notification kinds")
    unknown = sorted(set(value) - set(KINDS))
    if unknown:
        raise ParameterError(
            ErrorCode.WRONG_VALUE, f"kinds: unknown {unknown[0]!r}; one of {', '.join(KINDS)}"
        )
    return tuple(sorted(set(value)))


@router.post(WEBHOOKS_PATH, status_code=201)
async def create_webhook(
    caller: CallerDep, request: Request, settings: SettingsDep, redis: RedisDep
) -> Response:
    """Subscribe an address to the notifications of some VDNs; the secret is in this answer
    only."""
    await _admit(request, caller)
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise ParameterError(ErrorCode.PARAMETER_ERROR, f"body: not JSON ({error})") from None
    if not isinstance(body, dict):
        raise ParameterError(ErrorCode.WRONG_TYPE, "body: a JSON object")
    extra = sorted(set(body) - {"url", "vdns", "kinds"})
    if extra:
        raise ParameterError(ErrorCode.TOO_MANY_PARAMETERS, f"body: unknown field {extra[0]!r}")
    vdns = _vdns(body.get("vdns"))
    if not all(caller.scope.admits(vdn) for vdn in vdns):
        raise authentication_failed(request, "vdn out of scope")
    kinds = _kinds(body.get("kinds"))
    url = await _checked_address(
        body.get("url"), settings.webhook_allow_http, settings.webhook_allow_private_addresses
    )
    store = SubscriptionStore(redis, KeyLayout(settings.key_prefix))
    subscription = await store.create(url, vdns, kinds, caller.access_key or "")
    return _success({**subscription.public(), "secret": subscription.secret}, 201)


@router.get(WEBHOOKS_PATH)
async def list_webhooks(
    caller: CallerDep, request: Request, settings: SettingsDep, redis: RedisDep
) -> Response:
    """The subscriptions within the key's scope (never their secrets)."""
    await _admit(request, caller)
    store = SubscriptionStore(redis, KeyLayout(settings.key_prefix))
    visible = [
        s.public() for s in await store.all() if all(caller.scope.admits(vdn) for vdn in s.vdns)
    ]
    return _success(visible)


@router.delete(WEBHOOKS_PATH + "/{subscription_id}")
async def delete_webhook(
    subscription_id: str,
    caller: CallerDep,
    request: Request,
    settings: SettingsDep,
    redis: RedisDep,
) -> Response:
    """Remove a subscription within the key's scope (another's is answered as missing)."""
    await _admit(request, caller)
    store = SubscriptionStore(redis, KeyLayout(settings.key_prefix))
    subscription = await store.get(subscription_id)
    if subscription is None or not all(caller.scope.admits(v) for v in subscription.vdns):
        raise ParameterError(ErrorCode.WRONG_VALUE, f"no subscription {subscription_id!r}")
    await store.remove(subscription_id)
    return _success({"id": subscription_id})


async def _admit(request: Request, caller: Any) -> None:
    """A signature is used once (replay), and a key's management calls share its callback
    budget (flow control)."""
    admission = request.app.state.admission
    await admission.check(admission.callback_gate(request, caller))
