"""One subscriber's Server-Sent Events: a first read, then the changes the hub offers.

Ids. Every event carries the ``id`` a client sends back as ``Last-Event-ID`` when it
reconnects, to any API process:

- a subscriber of one campaign gets the change's own id (its stream id, "ms-seq"), and resumes
  exactly after it;
- a subscriber of a whole VDN gets the highest id sent so far. Campaigns' changes are not
  announced in the exact order of their ids (several processes read them; a Redis Cluster's
  nodes have clocks of their own), so it resumes from ``resume_margin_ms`` before that id.
  Changes it had are sent again; each carries its campaign's ``changeId``, by which a client
  keeps only the newer (our clients do).

The first read, in one round trip: without ``Last-Event-ID``, a snapshot of every campaign (its
latest change, or its rows when none is recorded); with one, every change after it, except for
a campaign whose changes since then are no longer all kept, which gets a snapshot. A snapshot is
sent as ``event: snapshot`` (and ``"snapshot": true``), a change as ``event: change``.

Then the live part: the subscriber's queue, each change sent unless the client has it or a newer
one of its campaign already, and a comment line when nothing was sent for
``heartbeat_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import anyio
from fastapi import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from isales_stats.api import metrics
from isales_stats.api.errors import ErrorCode, ParameterError
from isales_stats.api.push.hub import ChangeHub
from isales_stats.api.push.subscriber import Subscriber
from isales_stats.core.interface import (
    EVENT_STREAM_MEDIA_TYPE,
    ChangeId,
    format_change_id,
    parse_change_id,
)
from isales_stats.engine.changes import BEFORE_ANY_CHANGE, CampaignChange

# How long an EventSource waits before it reconnects (milliseconds; its default is ~3 s).
RETRY_MS = 1000
HEARTBEAT = b": heartbeat\n\n"
# A dropped subscriber's last words get this long to reach a client that reads at all.
GOODBYE_SECONDS = 1.0


class ChangeStream:
    """The frames of one subscriber, from its first read on."""

    def __init__(
        self, subscriber: Subscriber, hub: ChangeHub, resume_from: ChangeId | None
    ) -> None:
        self.subscriber = subscriber
        self.hub = hub
        self.reader = hub.reader
        self.settings = hub.settings  # its push_* settings
        self.resume_from = resume_from
        # The newest change sent per campaign (what a repeat is told by), and the event id: a
        # whole VDN's new subscriber starts at now on Redis' clock.
        self.sent: dict[str, ChangeId] = {}
        self.cursor: ChangeId = resume_from or (
            BEFORE_ANY_CHANGE if subscriber.campaign_id else (hub.redis_now_ms(), 0)
        )
        self.first: list[CampaignChange] = []  # the first read, sent ahead of the queue

    async def open(self) -> None:
        """The first read, before the response starts: Redis failing here is a 503."""
        self.first = await self.first_read()

    async def frames(self) -> AsyncIterator[bytes]:
        yield f"retry: {RETRY_MS}\n\n".encode()
        for change in self.first:
            frame = self.frame(change)
            if frame:
                yield frame
        self.first = []
        queue, dropped = self.subscriber.queue, self.subscriber.dropped
        while not dropped.is_set():
            try:
                change = await asyncio.wait_for(queue.get(), self.settings.push_heartbeat_seconds)
            except TimeoutError:
                yield HEARTBEAT
                continue
            frame = self.frame(change)
            if frame:
                yield frame

    async def first_read(self) -> list[CampaignChange]:
        subscriber = self.subscriber
        whole_vdn = subscriber.campaign_id is None
        if not whole_vdn:
            campaigns = [subscriber.campaign_id or ""]
            point = self.resume_from
        else:
            campaigns = await self.reader.live_campaigns(subscriber.vdn_id)
            point = None
            if self.resume_from is not None:
                margin = self.settings.push_resume_margin_ms
                point = (max(self.resume_from[0] - margin, 0), 0) if margin else self.resume_from
        reads = await self.reader.read(
            subscriber.vdn_id,
            [(campaign_id, point) for campaign_id in campaigns],
            self.hub.today_of(subscriber.vdn_id),
            # A whole VDN's margin covers changes announced late by a few seconds; one later
            # still would be missed, so each campaign's latest comes too (a repeat the client
            # drops by its changeId, or the one it missed).
            latest_anyway=whole_vdn,
        )
        changes: list[CampaignChange] = []
        for read in reads:
            if self.hub.interval and len(read.changes) > 1:
                # Paced: what is past stands in its latest change, marked as standing for more.
                changes.append(dataclasses.replace(read.changes[-1], snapshot=True))
            else:
                changes += read.changes
        changes.sort(key=lambda change: change.change_id)
        return changes

    def frame(self, change: CampaignChange) -> bytes | None:
        """The event of ``change``, or None when the client has it or a newer one."""
        campaign_id, change_id = change.campaign_id, change.change_id
        if campaign_id in self.sent and change_id <= self.sent[campaign_id]:
            return None
        self.sent[campaign_id] = change_id
        if self.subscriber.campaign_id is not None:
            self.cursor = change_id
        else:
            self.cursor = max(self.cursor, change_id)
        kind = "snapshot" if change.snapshot else "change"
        metrics.PUSH_EVENTS.labels(kind).inc()
        head = f"id: {format_change_id(self.cursor)}\n" if self.cursor > BEFORE_ANY_CHANGE else ""
        return f"{head}event: {kind}\ndata: ".encode() + change.to_json() + b"\n\n"


class EventStreamResponse(Response):
    """A response that sends a ``ChangeStream`` until the client goes or is dropped.

    Not Starlette's StreamingResponse: a dropped subscriber must end even while a send waits on
    a client that stopped reading, and the hub must forget the subscriber however it ends.
    """

    media_type = EVENT_STREAM_MEDIA_TYPE

    def __init__(self, stream: ChangeStream, hub: ChangeHub) -> None:
        super().__init__(status_code=200)
        self.stream = stream
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber = self.stream.subscriber
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", f"{EVENT_STREAM_MEDIA_TYPE}; charset=utf-8".encode()),
                        (b"cache-control", b"no-store"),
                        # nginx and its kin buffer responses unless told not to.
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._until_disconnected, receive, tasks.cancel_scope)
                tasks.start_soon(self._until_dropped, subscriber, tasks.cancel_scope)
                async for frame in self.stream.frames():
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                tasks.cancel_scope.cancel()
            if subscriber.dropped.is_set():
                # Ended by us: close the body if the client still reads, else just go (the
                # server then closes the connection).
                with anyio.move_on_after(GOODBYE_SECONDS), contextlib.suppress(OSError):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.hub.unsubscribe(subscriber)

    @staticmethod
    async def _until_disconnected(receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    @staticmethod
    async def _until_dropped(subscriber: Subscriber, scope: anyio.CancelScope) -> None:
        await subscriber.dropped.wait()
        scope.cancel()


def last_event_id(request: Request) -> ChangeId | None:
    text = request.headers.get("last-event-id", "")
    if not text:
        return None
    try:
        return parse_change_id(text)
    except ValueError:
        raise ParameterError(
            ErrorCode.WRONG_VALUE,
            f"Last-Event-ID must be an id this stream sent (digits-digits), got {text[:40]!r}",
        ) from None


async def open_stream(
    hub: ChangeHub,
    vdn_id: int,
    campaign_id: str | None,
    key: str,
    resume_from: ChangeId | None,
) -> Response:
    """Register the subscriber, read what it is owed, and answer with its stream."""
    subscriber = hub.subscribe(vdn_id, campaign_id, key)
    stream = ChangeStream(subscriber, hub, resume_from)
    try:
        await stream.open()
    except BaseException:
        hub.unsubscribe(subscriber)
        raise
    return EventStreamResponse(stream, hub)
