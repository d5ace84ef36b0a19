"""A subscriber: what the hub offers one client, held in a bounded queue until it is sent.

A client that reads slower than its changes come lets the queue fill; it is then dropped, not
waited for, so that it never slows the hub or the other subscribers. It reconnects with
``Last-Event-ID`` and resumes from the streams in Redis (api/push/stream.py).
"""

from __future__ import annotations

import asyncio

from isales_stats.engine.changes import CampaignChange


class Subscriber:
    """One client of one VDN (all its campaigns, or ``campaign_id``), under one access key."""

    def __init__(self, vdn_id: int, campaign_id: str | None, key: str, queue_events: int) -> None:
        self.vdn_id = vdn_id
        self.campaign_id = campaign_id
        self.key = key
        self.queue: asyncio.Queue[CampaignChange] = asyncio.Queue(queue_events)
        # Set when the subscriber is to go (``drop_reason`` says why): its response ends.
        self.dropped = asyncio.Event()
        self.drop_reason = ""

    def wants(self, campaign_id: str) -> bool:
        return self.campaign_id is None or self.campaign_id == campaign_id

    def offer(self, change: CampaignChange) -> bool:
        """Queue ``change``; False when the queue is full and the subscriber is dropped now."""
        if self.dropped.is_set():
            return True
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.drop("slow")
            return False
        return True

    def drop(self, reason: str) -> None:
        self.drop_reason = reason
        self.dropped.set()
