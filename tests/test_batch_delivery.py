"""The batch-delivery consumer's own settings of aiokafka (engine/batch_delivery.py)."""

from __future__ import annotations

import asyncio

from faust.transport.drivers import aiokafka as faust_aiokafka

from isales_stats.core.settings import Settings
from isales_stats.engine.app import create_app
from isales_stats.engine.batch_delivery import (
    FETCH_MAX_WAIT_MS,
    BatchDeliveryConsumer,
    BatchDeliveryConsumerThread,
)


def test_the_broker_may_hold_a_fetch_for_100_ms_not_faust_s_1500() -> None:
    """A fetch held for idle partitions holds back the busy ones (the soak's stalls of 1-2 s)."""

    async def build() -> tuple[object, int]:
        app = create_app(Settings())
        assert isinstance(app.consumer, BatchDeliveryConsumer)
        thread = app.consumer._thread
        transport = app.transport
        assert isinstance(transport, faust_aiokafka.Transport)
        consumer = thread._create_worker_consumer(transport)  # not started: no broker needed
        try:
            return thread, consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()
            thread.thread_loop.close()  # made with the thread, which never started

    thread, fetch_max_wait_ms = asyncio.run(build())
    assert isinstance(thread, BatchDeliveryConsumerThread)
    assert fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100
