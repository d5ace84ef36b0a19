"""``isales-stats publish``: send the events of a file (or stdin) to Kafka through the SDK.

Every event goes through ``EventPublisher``, so it is validated the way the worker will read
it. Nothing is lost silently: an event that is invalid, or that Kafka does not acknowledge,
goes to the rejects file with the reason, ready to fix and publish again. Progress is a live
line on stderr (a bar when the file's size is known).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from pathlib import Path
from typing import IO, Any, TextIO

import orjson
from kafka.errors import KafkaError

from isales_stats.commands.deliveries import Deliveries
from isales_stats.commands.exit_status import EXIT_CANNOT_START, EXIT_OK, EXIT_SOME_NOT_SENT
from isales_stats.commands.progress import EventRate, LiveLine, progress_bar
from isales_stats.core.events import InvalidEvent
from isales_stats.core.settings import Settings
from isales_stats.producing.event_files import Unreadable, file_size, read_events
from isales_stats.producing.publisher import (
    EventPublisher,
    KafkaAccessRefused,
    producer_timeouts,
)


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
    except (KafkaAccessRefused, KafkaError) as error:
        refused = isinstance(error, KafkaAccessRefused)  # it names the setting to fix
        reason = str(error) if refused else f"cannot reach Kafka at {settings.kafka_url}: {error!r}"
        print(reason, file=sys.stderr)
        stream.close()
        return EXIT_CANNOT_START
    deliveries = Deliveries()
    rejects: list[dict[str, Any]] = []
    stopped_early = False
    line = LiveLine(progress)
    rate = EventRate()
    began = time.monotonic()

    def render(done: float) -> str:
        bar = progress_bar(done) if done >= 0 else ""
        return (
            f"{bar}{deliveries.acknowledged:>10,} sent  {len(rejects):,} rejected  "
            f"{len(deliveries.failures):,} failed  "
            f"{rate.measure(deliveries.acknowledged):,.0f} events/s"
        )

    done = -1.0
    try:
        for where, item, done in read_events(stream, file_size(stream)):
            if isinstance(item, Unreadable):
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


def _write_json_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("wb") as output:
        for row in rows:
            output.write(orjson.dumps(row, default=repr) + b"\n")
