"""The Python SDK for producers: publish call events to Kafka with kafka-python.

    from isales_stats.producing.publisher import EventPublisher
    from isales_stats.core.settings import get_settings

    with EventPublisher(get_settings()) as publisher:   # flushes and closes on exit
        publisher.publish({"eventType": "data.added", "vdnId": 1, "campaignId": "1001",
                           "batchId": "b1", "dataId": "r1", "occurredAt": 1717200000000})

Every event is checked against the contract (``engine/events.py``, the same decoder the worker
runs) before it is sent, and so is its clock: an event stamped further in the future than the
worker tolerates would only be dead-lettered. An invalid event raises ``InvalidEvent`` naming
the field, and nothing is sent. What goes on the wire is the contract's normal form
(``CallEvent.to_json``), keyed ``{vdnId}:{campaignId}`` so that a campaign's events stay in
order on one partition.

Delivery: an idempotent producer with ``acks="all"``: a send is acknowledged once every
in-sync replica has it, and the producer's retries after a lost answer do not duplicate it.
(A duplicate that does get through, e.g. a whole program re-run, is harmless: counting is
idempotent.)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.net.compat import KafkaNetClient

from isales_stats.core.clock_skew import latest_admitted_ms
from isales_stats.core.events import CallEvent, InvalidEvent, event_from_json
from isales_stats.core.kafka_connection import (
    KafkaAccessRefused,
    check_kafka_access,
    client_options,
)
from isales_stats.core.settings import Settings

__all__ = [
    "PRODUCER_DEFAULTS",
    "AsyncEventPublisher",
    "EventPublisher",
    "InvalidEvent",
    "KafkaAccessRefused",
    "producer_timeouts",
    "validate_event",
]

# Batching, measured in docs/benchmarks.md (section "Publisher SDK"): on loopback and two cores
# the producer is bound by Python's CPU time per message, not by the network, so what helps is
# fewer and bigger produce requests. linger_ms=5 lets a batch fill while the caller keeps sending
# (at most 5 ms of extra latency for a lone event); 256 KiB batches hold ~1,000 events of ~250
# bytes, so one request per partition carries a whole burst. Compression is left off: the
# events are small, and codecs cost producer CPU, the scarce resource here; pass
# compression_type="zstd" (with the zstandard package) for a slow network.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 5,
    "batch_size": 256 * 1024,
    # Idempotence keeps order with up to 5 requests in flight per broker.
    "max_in_flight_requests_per_connection": 5,
}


def producer_timeouts(timeout: float) -> dict[str, Any]:
    """KafkaProducer settings that make an unreachable Kafka an error within ``timeout`` seconds.

    kafka-python's own defaults wait up to 60 s for metadata and retry a send for 120 s, with a
    reconnect backoff growing to 30 s: too long for a command or a callback that has a caller
    waiting. Requests keep their 30 s unless the whole budget is shorter, and the delivery
    timeout must be at least the request timeout plus linger (kafka-python's rule).
    """
    milliseconds = int(timeout * 1000)
    request = min(30_000, milliseconds)
    return {
        "bootstrap_timeout_ms": milliseconds,
        "max_block_ms": milliseconds,
        "request_timeout_ms": request,
        "delivery_timeout_ms": max(milliseconds, request + 100),
        # Reconnect within a second or two of Kafka coming back, not after 30 s of backoff.
        "reconnect_backoff_max_ms": 1000,
    }


class EventPublisher:
    """An idempotent, ``acks="all"`` producer of call events, keyed ``{vdnId}:{campaignId}``.

    ``producer_options`` override ``PRODUCER_DEFAULTS`` (any KafkaProducer setting). ``clock``
    (epoch seconds) is what "the future" is measured against. With TLS or SASL configured
    (ISALES_KAFKA_*), a broker that refuses them raises ``KafkaAccessRefused`` naming the
    setting, instead of kafka-python retrying until its timeout.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        **producer_options: Any,
    ) -> None:
        self.topic = settings.call_events_topic
        self.future_tolerance_seconds = settings.future_tolerance_seconds
        self.clock = clock
        check_kafka_access(settings)
        options: dict[str, Any] = {
            **client_options(settings),
            **PRODUCER_DEFAULTS,
            **producer_options,
        }
        self._producer = _open_producer(options)

    def validate(self, event: CallEvent | Mapping[str, Any]) -> CallEvent:
        """The event as the contract reads it; ``InvalidEvent`` naming the field otherwise."""
        return validate_event(event, self.future_tolerance_seconds, self.clock())

    def publish(self, event: CallEvent | Mapping[str, Any]) -> Any:
        """Validate and send one event; returns kafka-python's future of the send.

        Raises ``InvalidEvent`` (nothing sent) for an event that breaks the contract. The send
        itself is asynchronous: its errors arrive through the future (``.get()``,
        ``.add_errback()``), or as an exception from ``flush`` when they outlast it.
        """
        return self._send(self.validate(event))

    def _send(self, event: CallEvent) -> Any:
        return self._producer.send(
            self.topic, key=event.kafka_key, value=orjson.dumps(event.to_json())
        )

    def publish_all(
        self, events: Iterable[CallEvent | Mapping[str, Any]], timeout: float | None = None
    ) -> int:
        """Validate every event, then send them all and wait until Kafka acknowledged each one.

        All or nothing on validation: one invalid event raises ``InvalidEvent`` before anything
        is sent. A send that fails or is not acknowledged within ``timeout`` seconds raises
        (``KafkaError``); some of the events may have been written then, so the caller retries
        the whole lot, which is safe because duplicates are not counted twice.
        """
        valid = [self.validate(event) for event in events]
        deadline = None if timeout is None else time.monotonic() + timeout
        futures = [self._send(event) for event in valid]
        self._producer.flush(timeout=None if deadline is None else _left(deadline))
        for future in futures:
            future.get(timeout=None if deadline is None else _left(deadline))
        return len(futures)

    def publish_raw(self, value: bytes, key: bytes | None = None) -> Any:
        """Send bytes unchecked: only for tests and tools that must produce bad input."""
        return self._producer.send(self.topic, key=key, value=value)

    def flush(self, timeout: float | None = None) -> None:
        """Send whatever is buffered and wait for the answers (``KafkaTimeoutError`` if late)."""
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then release the connections; the publisher cannot be used afterwards."""
        self._producer.close(timeout=timeout)

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # close() flushes first: what was published before an exception is still delivered.
        self.close()


def _open_producer(options: dict[str, Any]) -> KafkaProducer:
    """A KafkaProducer; when Kafka cannot be reached, its half-built client is closed.

    KafkaProducer's constructor connects (to learn the broker's version) and, when that fails,
    raises without closing the sockets it opened: keep a hold on the client to close them.
    """
    clients: list[KafkaNetClient] = []

    def client(**config: Any) -> KafkaNetClient:
        clients.append(KafkaNetClient(**config))
        return clients[-1]

    try:
        return KafkaProducer(**{"kafka_client": client, **options})
    except BaseException:
        for opened in clients:
            opened.close()
        raise


def validate_event(
    event: CallEvent | Mapping[str, Any], future_tolerance_seconds: int, now: float
) -> CallEvent:
    """``event`` as the worker will read it, or ``InvalidEvent`` naming the field that is wrong.

    ``now`` (epoch seconds) is the clock the worker's ``future_tolerance_seconds`` applies to.
    """
    if not isinstance(event, CallEvent):
        if not isinstance(event, Mapping):
            raise InvalidEvent(f"an event must be a JSON object, got {type(event).__name__}")
        event = event_from_json(dict(event))
    latest_ms = latest_admitted_ms(now, future_tolerance_seconds)
    if event.occurred_at_ms > latest_ms:
        ahead = (event.occurred_at_ms - latest_ms) // 1000 + future_tolerance_seconds
        raise InvalidEvent(
            f"occurredAt is {ahead} s in the future, beyond the allowed clock skew of "
            f"{future_tolerance_seconds} s"
        )
    return event


class AsyncEventPublisher:
    """The SDK for asyncio code: same producer, same checks, no blocking of the event loop.

    kafka-python is blocking but thread-safe, and its network I/O already runs in its own sender
    thread. So only the calls that can block go to a worker thread (opening the producer, and
    ``send``, which waits for metadata when it has none), and the acknowledgements come back
    through the futures' callbacks onto the event loop: a request waiting for Kafka holds no
    thread. (aiokafka would be a second producer implementation with its own defaults to get
    right, and would bypass the SDK every other producer uses.)

    The producer is opened at the first publish, not here: a process can start, and serve
    whatever else it serves, while Kafka is down. ``timeout`` bounds every wait.
    """

    def __init__(self, settings: Settings, timeout: float, **producer_options: Any) -> None:
        self.timeout = timeout
        self._settings = settings
        # Give up on a broker that does not answer within the caller's patience.
        self._options: dict[str, Any] = {**producer_timeouts(timeout), **producer_options}
        self._publisher: EventPublisher | None = None
        self._opening = threading.Lock()

    def _open(self) -> EventPublisher:
        # One attempt at a time; a caller does not queue behind others for longer than timeout.
        if not self._opening.acquire(timeout=self.timeout):
            raise TimeoutError(f"Kafka could not be reached within {self.timeout} s")
        try:
            if self._publisher is None:
                self._publisher = EventPublisher(self._settings, **self._options)
            return self._publisher
        finally:
            self._opening.release()

    async def publish_all(self, events: Sequence[CallEvent | Mapping[str, Any]]) -> int:
        """Validate all, send all, return once Kafka acknowledged every one of them.

        ``InvalidEvent`` before anything is sent; ``KafkaError``, ``TimeoutError`` or
        ``OSError`` when Kafka did not acknowledge them all in time (some may have been written:
        publishing the same events again is safe, duplicates are not counted twice).
        """
        if not events:
            return 0
        deadline = time.monotonic() + self.timeout
        publisher = self._publisher
        if publisher is None:
            publisher = await asyncio.to_thread(self._open)
        valid = [publisher.validate(event) for event in events]  # before anything is sent
        futures = await asyncio.to_thread(_send_all, publisher, valid)
        loop = asyncio.get_running_loop()
        acknowledgements = [_on_loop(future, loop) for future in futures]
        try:
            await asyncio.wait_for(asyncio.gather(*acknowledgements), _left(deadline))
        except TimeoutError:
            raise TimeoutError(
                f"Kafka did not acknowledge {len(futures)} events within {self.timeout} s"
            ) from None
        return len(futures)

    async def close(self) -> None:
        if self._publisher is not None:
            await asyncio.to_thread(self._publisher.close, self.timeout)
            self._publisher = None


def _send_all(publisher: EventPublisher, events: list[CallEvent]) -> list[Any]:
    return [publisher.publish(event) for event in events]


def _on_loop(future: Any, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    """An asyncio future that settles on ``loop`` when kafka-python's ``future`` does."""
    waiter: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if waiter.done():  # the request gave up (timeout) before Kafka answered
            return
        if error is None:
            waiter.set_result(value)
        else:
            waiter.set_exception(error)

    def from_sender_thread(value: Any = None, error: BaseException | None = None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(settle, value, error)

    future.add_callback(lambda value: from_sender_thread(value))
    future.add_errback(lambda error: from_sender_thread(None, error))
    return waiter


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
