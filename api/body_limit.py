"""Request bodies bounded before they are read: 413 at the limit, never a 50 MB read.

An ASGI middleware, so that it runs before any route reads the body (the signature check reads
it, to hash it). A ``Content-Length`` over the limit is answered at once, without reading a
byte of the body. A body without one (chunked) is read through a counter that stops at the
limit: the route then never sees the rest, and the answer is the same 413. Either way the
connection is closed after the answer, so the client's unread bytes are not drained.

The limits: ``ISALES_CALLBACK_MAX_BODY_BYTES`` (1 MiB) on the result callbacks, whose bodies
are arrays of results; ``REQUEST_MAX_BODY_BYTES`` (16 KiB) everywhere else, where a body is
empty (the statistics GET signs an empty body).
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from isales_stats.api.errors import ErrorCode, envelope
from isales_stats.api.metrics import BODIES_TOO_LARGE

REQUEST_MAX_BODY_BYTES = 16 * 1024


class _TooLarge(Exception):
    """Raised from ``receive`` once the body passes the limit."""


class BodyLimit:
    def __init__(self, app: ASGIApp, callback_path: str, callback_max_bytes: int) -> None:
        self.app = app
        self.callback_path = callback_path
        self.callback_max_bytes = callback_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_callback = scope["path"] == self.callback_path
        limit = self.callback_max_bytes if is_callback else REQUEST_MAX_BODY_BYTES
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(send, is_callback, limit)
            return
        read = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    raise _TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if started:  # the route answered before reading it all: nothing more to say
                return
            await self._refuse(send, is_callback, limit)

    async def _refuse(self, send: Send, is_callback: bool, limit: int) -> None:
        BODIES_TOO_LARGE.labels("callback" if is_callback else "other").inc()
        text = f"the request body is over the limit of {limit} bytes"
        body = (
            {"retCode": "413", "retMsg": text}
            if is_callback
            else envelope(ErrorCode.PARAMETER_ERROR, text)
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": orjson.dumps(body)})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
