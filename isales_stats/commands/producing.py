"""The producer tools of the command line: ``isales-stats publish`` and ``isales-stats simulate``.

Both send through the SDK (``EventPublisher``), so both validate every event the way the
worker will, and both report on stderr as they go: a progress bar or a live events/s line,
rewritten in place on a terminal, a line every few seconds in a log.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TextIO

import orjson
from kafka.errors import KafkaError

from isales_stats.core.clock_skew import latest_admitted_ms
from isales_stats.core.events import InvalidEvent, event_from_json
from isales_stats.core.reference_model import ReferenceModel
from isales_stats.core.settings import Settings
from isales_stats.producing.publisher import EventPublisher, producer_timeouts
from isales_stats.producing.simulator import TrafficOptions, simulate_traffic

# Exit statuses of both commands.
EXIT_OK = 0
EXIT_SOME_NOT_SENT = 1  # rejected or failed events (publish); failed sends (simulate)
EXIT_CANNOT_START = 2  # unreadable input, Kafka unreachable, bad options


class LiveLine:
    """One status line on ``stream``: redrawn in place on a terminal, else a line now and then."""

    def __init__(self, stream: TextIO, interval: float = 0.25, log_interval: float = 5.0) -> None:
        self.stream = stream
        self.terminal = stream.isatty()
        self.interval = interval if self.terminal else log_interval
        self._shown_at = time.monotonic()

    def update(self, render: Callable[[], str]) -> None:
        """Show ``render()`` unless the line was shown less than ``interval`` ago."""
        now = time.monotonic()
        if now - self._shown_at < self.interval:
            return
        self._shown_at = now
        self._write(render())

    def finish(self, text: str) -> None:
        self._write(text)
        if self.terminal:
            self.stream.write("\n")
            self.stream.flush()

    def _write(self, text: str) -> None:
        if self.terminal:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


class _Rate:
    """Events per second over the last refresh of the live line."""

    def __init__(self) -> None:
        self._at = time.monotonic()
        self._count = 0
        self.value = 0.0

    def measure(self, total: int) -> float:
        now = time.monotonic()
        if now - self._at >= 0.2:
            self.value = (total - self._count) / (now - self._at)
            self._at, self._count = now, total
        return self.value


# --- publish ---------------------------------------------------------------------------------


class _Deliveries:
    """Sends in flight and their outcomes; the producer's thread reports through the callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[dict[str, Any], Any]] = {}
        self._numbers = itertools.count()
        self.acknowledged = 0
        self.failures: list[dict[str, Any]] = []

    def track(self, future: Any, where: dict[str, Any], event: Any) -> None:
        number = next(self._numbers)
        with self._lock:
            self._pending[number] = (where, event)
        future.add_callback(lambda _metadata: self._acknowledged(number))
        future.add_errback(lambda error: self._failed(number, error))

    def fail(self, where: dict[str, Any], event: Any, error: BaseException) -> None:
        with self._lock:
            self.failures.append({**where, "reason": f"send failed: {error!r}", "event": event})

    def give_up(self) -> None:
        """Whatever is still unanswered counts as failed."""
        with self._lock:
            for where, event in self._pending.values():
                self.failures.append(
                    {**where, "reason": "send failed: not acknowledged in time", "event": event}
                )
            self._pending.clear()

    def _acknowledged(self, number: int) -> None:
        with self._lock:
            if self._pending.pop(number, None) is not None:
                self.acknowledged += 1

    def _failed(self, number: int, error: BaseException) -> None:
        with self._lock:
            entry = self._pending.pop(number, None)
        if entry is not None:
            self.fail(*entry, error)


def publish_file(
    settings: Settings,
    source: str,
    rejects_path: Path,
    timeout: float,
    progress: TextIO = sys.stderr,
) -> int:
    """``isales-stats publish``: send the events of ``source`` (a path, or ``-`` for stdin).

    Returns the exit status: 0 when every event was acknowledged by Kafka, 1 when some were
    rejected (invalid) or failed to send (all of them are in ``rejects_path`` with the reason),
    2 when the input cannot be read or Kafka cannot be reached at all.
    """
    try:
        stream: IO[bytes] = sys.stdin.buffer if source == "-" else Path(source).open("rb")  # noqa: SIM115
    except OSError as error:
        print(f"cannot read {source}: {error.strerror}", file=sys.stderr)
        return EXIT_CANNOT_START
    try:
        publisher = EventPublisher(settings, **producer_timeouts(timeout))
    except KafkaError as error:
        print(f"cannot reach Kafka at {settings.kafka_url}: {error!r}", file=sys.stderr)
        stream.close()
        return EXIT_CANNOT_START
    deliveries = _Deliveries()
    rejects: list[dict[str, Any]] = []
    stopped_early = False
    line = LiveLine(progress)
    rate = _Rate()
    began = time.monotonic()

    def render(done: float) -> str:
        bar = _bar(done) if done >= 0 else ""
        return (
            f"{bar}{deliveries.acknowledged:>10,} sent  {len(rejects):,} rejected  "
            f"{len(deliveries.failures):,} failed  "
            f"{rate.measure(deliveries.acknowledged):,.0f} events/s"
        )

    done = -1.0
    try:
        for where, item, done in _read_events(stream, _size(stream)):
            if isinstance(item, _Unreadable):
                rejects.append({**where, "reason": item.reason, "raw": item.text})
                continue
            try:
                future = publisher.publish(item)
            except InvalidEvent as error:
                rejects.append({**where, "reason": str(error), "event": item})
                continue
            except KafkaError as error:  # no metadata in time: Kafka or the topic is missing
                deliveries.fail(where, item, error)
                stopped_early = True
                break
            deliveries.track(future, where, item)
            line.update(functools.partial(render, done))
        with contextlib.suppress(KafkaError):  # late sends are failures: give_up() below
            publisher.flush(0 if stopped_early else timeout)
    finally:
        stream.close()
        with contextlib.suppress(KafkaError):
            publisher.close(timeout=0)
        deliveries.give_up()
    line.finish(render(1.0 if done >= 0 else -1.0))
    failed = len(deliveries.failures)
    print(
        f"sent {deliveries.acknowledged:,}, rejected {len(rejects):,}, failed {failed:,} "
        f"in {time.monotonic() - began:.1f} s"
    )
    if stopped_early:
        print("stopped at a send that failed: the events after it were not read")
    not_sent = rejects + deliveries.failures
    if not_sent:
        _write_json_lines(rejects_path, not_sent)
        print(f"events not sent, with the reasons: {rejects_path}")
        return EXIT_SOME_NOT_SENT
    return EXIT_OK


@dataclass(frozen=True)
class _Unreadable:
    reason: str
    text: str


def _read_events(
    stream: IO[bytes], total_bytes: int
) -> Iterator[tuple[dict[str, Any], Any, float]]:
    """(where, parsed event or _Unreadable, fraction done or -1) of a JSON-lines or array file.

    A file whose first non-blank character is ``[`` is one JSON array; anything else is JSON
    lines (blank lines skipped).
    """
    position = 0
    number = 0
    for raw in stream:
        number += 1
        position += len(raw)
        if not raw.strip():
            continue
        if raw.lstrip().startswith(b"["):
            yield from _array_events(raw + stream.read())
            return
        done = position / total_bytes if total_bytes else -1.0
        try:
            yield {"line": number}, orjson.loads(raw), done
        except orjson.JSONDecodeError as error:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            yield {"line": number}, _Unreadable(f"not JSON: {error}", text[:1000]), done


def _array_events(text: bytes) -> Iterator[tuple[dict[str, Any], Any, float]]:
    try:
        elements = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        yield {"element": None}, _Unreadable(f"not a JSON array: {error}", ""), 1.0
        return
    if not isinstance(elements, list):
        yield {"element": None}, _Unreadable("not a JSON array", ""), 1.0
        return
    for index, element in enumerate(elements, start=1):
        yield {"element": index}, element, index / len(elements)


def _size(stream: IO[bytes]) -> int:
    try:
        return Path(stream.name).stat().st_size if isinstance(stream.name, str) else 0
    except OSError:
        return 0


def _bar(done: float, width: int = 24) -> str:
    filled = int(width * min(done, 1.0))
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:>4.0%} "


def _write_json_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("wb") as output:
        for row in rows:
            output.write(orjson.dumps(row, default=repr) + b"\n")


# --- simulate ---------------------------------------------------------------------------------


def run_simulation(
    settings: Settings,
    options: TrafficOptions,
    *,
    rate: float = 0.0,
    duration: float | None = None,
    max_events: int | None = None,
    now_ms: int | None = None,
    expect_path: Path | None = None,
    output_path: Path | None = None,
    timeout: float = 60.0,
    progress: TextIO = sys.stderr,
) -> int:
    """``isales-stats simulate``: generate traffic, publish it (or write it), predict the result.

    Stops when the traffic is used up, after ``max_events`` or after ``duration`` seconds,
    whichever comes first; ``rate`` 0 sends as fast as possible. Returns the exit status: 0,
    1 when some events were not acknowledged by Kafka, 2 when it could not start.
    """
    wall_ms = _now_ms()
    latest_ms = latest_admitted_ms(time.time(), settings.future_tolerance_seconds)
    if now_ms is not None and now_ms > latest_ms:
        print("--now lies in the future beyond the allowed clock skew", file=sys.stderr)
        return EXIT_CANNOT_START
    zone = settings.time_zone_of(options.vdn_id)
    traffic = simulate_traffic(options, now_ms or wall_ms, zone, clock_ms=_now_ms)
    expected = ReferenceModel(settings.time_zone_of) if expect_path else None
    kinds: Counter[str] = Counter()
    deliveries = _Deliveries()
    produced = 0
    line = LiveLine(progress)
    measured = _Rate()

    def render() -> str:
        return (
            f"simulate: {produced:>10,} events  {measured.measure(produced):>8,.0f} events/s  "
            f"{len(deliveries.failures):,} failed"
        )

    output: IO[bytes] | None = None
    publisher: EventPublisher | None = None
    try:
        if output_path is None:
            publisher = EventPublisher(settings, **producer_timeouts(timeout))
        elif str(output_path) == "-":
            output = sys.stdout.buffer
        else:
            output = output_path.open("wb")
    except (OSError, KafkaError) as error:
        print(f"cannot start: {error!r}", file=sys.stderr)
        return EXIT_CANNOT_START

    began = time.monotonic()
    deadline = None if duration is None else began + duration
    try:
        _stop_on_sigterm()
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop, flush, then report
            for body in traffic:
                now = time.monotonic()
                if (max_events is not None and produced >= max_events) or (
                    deadline is not None and now >= deadline
                ):
                    break
                if rate > 0 and (due := began + produced / rate) > now:
                    time.sleep(due - now)
                # The simulator only makes valid events; were it wrong, this raises: a bug to fix.
                event = publisher.validate(body) if publisher else event_from_json(body)
                if publisher is not None:
                    try:
                        deliveries.track(publisher.publish(event), {}, None)
                    except KafkaError as error:  # no metadata: Kafka or the topic is missing
                        deliveries.fail({}, None, error)
                        break
                else:
                    assert output is not None
                    output.write(orjson.dumps(event.to_json()) + b"\n")
                if expected is not None:
                    expected.add(event.to_json())  # the event as it goes on the wire
                produced += 1
                kinds[event.kind.value] += 1
                line.update(render)
        if publisher is not None:
            with contextlib.suppress(KafkaError):  # late sends are failures: give_up() below
                publisher.flush(timeout)
    finally:
        if publisher is not None:
            with contextlib.suppress(KafkaError):
                publisher.close(timeout=0)
            deliveries.give_up()
        if output is not None and output is not sys.stdout.buffer:
            output.close()
    elapsed = time.monotonic() - began
    line.finish(render())
    summary = ", ".join(f"{count:,} {kind}" for kind, count in sorted(kinds.items()))
    print(
        f"simulated {produced:,} events ({summary or 'none'}) in {elapsed:.1f} s, "
        f"{produced / max(elapsed, 1e-9):,.0f} events/s; seed {options.seed}",
        file=sys.stderr if output is sys.stdout.buffer else sys.stdout,
    )
    failed = len(deliveries.failures)
    if failed:
        print(f"{failed:,} events were not acknowledged by Kafka", file=sys.stderr)
    if expected is not None and expect_path is not None:
        today = datetime.fromtimestamp(time.time(), zone).date()
        prediction = {
            "vdnId": options.vdn_id,
            "day": today.isoformat(),
            "countDetail": expected.count_detail(options.vdn_id, today),
        }
        expect_path.write_bytes(orjson.dumps(prediction, option=orjson.OPT_INDENT_2) + b"\n")
    return EXIT_SOME_NOT_SENT if failed else EXIT_OK


def _stop_on_sigterm() -> None:
    """A polite kill stops the run like Ctrl-C: what was sent is flushed and reported."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def random_seed() -> int:
    return random.SystemRandom().randrange(1, 2**31)


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)
