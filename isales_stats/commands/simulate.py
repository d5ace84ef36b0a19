"""``isales-stats simulate``: generate a dialer's traffic, publish it (or write it), predict it.

The traffic model is ``isales_stats.producing.simulator``; this is the command around it:
pacing (``--rate``), limits (``--duration``, ``--events``), the live line, a clean stop on
Ctrl-C or SIGTERM (what was sent is flushed and reported), and with ``--expect`` the statistics
the API should then serve, from the reference model (``isales_stats.core.reference_model``).
"""

from __future__ import annotations

import contextlib
import random
import signal
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TextIO

import orjson
from kafka.errors import KafkaError

from isales_stats.commands.deliveries import Deliveries
from isales_stats.commands.exit_status import EXIT_CANNOT_START, EXIT_OK, EXIT_SOME_NOT_SENT
from isales_stats.commands.progress import EventRate, LiveLine
from isales_stats.core.clock_skew import latest_admitted_ms
from isales_stats.core.events import event_from_json
from isales_stats.core.reference_model import ReferenceModel
from isales_stats.core.settings import Settings
from isales_stats.producing.publisher import (
    EventPublisher,
    KafkaAccessRefused,
    producer_timeouts,
)
from isales_stats.producing.simulator import TrafficOptions, simulate_traffic


# C901 on purpose: one command's run from start to report, read top to bottom; its parts (traffic,
# sink, pacing, prediction) are already functions elsewhere, what remains is their order.
def run_simulation(  # noqa: C901
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
    deliveries = Deliveries()
    produced = 0
    line = LiveLine(progress)
    measured = EventRate()

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
    except KafkaAccessRefused as error:
        print(error, file=sys.stderr)  # it names the setting to fix
        return EXIT_CANNOT_START
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
                elif output is not None:
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
