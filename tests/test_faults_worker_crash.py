"""Fault row 1: a worker killed with SIGKILL three times at random moments, restarted each time.

240,000 events (campaign_stream: 6 campaigns, 3 batches, 2 % upstream duplicates) are in
Kafka; a worker counts them and is killed with ``kill -9`` when the counted share reaches a
random fraction (seeded, printed; ``ISALES_FAULT_SEED`` replays a run), then a new worker
takes over. Nothing is committed on a kill, so every restart replays what the dead worker had
not committed: the final statistics must still be exactly the reference model's, and the
consumer group must commit every partition to its log end (a worker that resumes past Kafka's
commit, from the offsets stored with the counts, must not freeze the group's commits), and the
statistics must still be exact once every partition's resume point is at its log end (nothing
left to replay).
"""

from __future__ import annotations

import itertools
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from isales_stats.core.settings import Settings
from tests.support.detail import (
    distinct_identities_counted,
    expected_detail,
    identities_in,
    read_detail,
)
from tests.support.faults import (
    assert_replay_over,
    fault_seed,
    figures,
    scrape_metric,
    wait_for_metrics,
    wait_until_exact,
)
from tests.support.kafka_topics import publish
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.streams import campaign_stream
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.faults]

STREAM_EVENTS = 240_000
KILLS = 3


def kill_moments(rng: random.Random) -> list[float]:
    """Three shares of the stream in (5 %, 90 %), at least 8 % apart, in order."""
    while True:
        moments = sorted(rng.uniform(0.05, 0.9) for _ in range(KILLS))
        if all(later - earlier >= 0.08 for earlier, later in itertools.pairwise(moments)):
            return moments


def test_three_kill_nines_at_random_moments_change_nothing(
    test_settings: Settings, tmp_path: Path
) -> None:
    began = time.monotonic()
    seed = fault_seed("row 1: worker crash")
    rng = random.Random(seed)
    stream = campaign_stream(STREAM_EVENTS, seed=seed, now=datetime.now(UTC))
    expected = expected_detail(stream)
    campaigns = [entry["campaignId"] for entry in expected]
    total = identities_in(stream)
    publish(test_settings, stream)

    kills = []
    for moment in kill_moments(rng):
        goal = moment * total
        worker = ServiceProcess(test_settings, "worker", log_dir=tmp_path, worker_metrics_port=0)
        started = time.monotonic()
        worker.start()
        reached = wait_for(
            lambda: distinct_identities_counted(test_settings, campaigns) >= goal,  # noqa: B023
            timeout=180,
            interval=0.02,
        )
        time.sleep(rng.uniform(0, 0.1))  # not always right after a batch was written
        worker.kill()
        assert reached, f"the worker made no progress:\n{worker.log()}"
        counted = distinct_identities_counted(test_settings, campaigns)
        assert counted < total, "killed after the end of the stream: no crash mid-stream"
        kills.append(
            f"at {moment:.1%} drawn, {counted / total:.1%} counted, "
            f"worker alive {time.monotonic() - started:.1f} s"
        )
        print(f"[row 1] kill -9 {len(kills)}: {kills[-1]}", flush=True)

    metrics_port = free_port()
    last = ServiceProcess(
        test_settings, "worker", log_dir=tmp_path, worker_metrics_port=metrics_port
    )
    restarted = time.monotonic()
    with last:
        exact = wait_until_exact(test_settings, expected, timeout=180)
        to_exact = time.monotonic() - restarted
        assert exact, f"numbers after {KILLS} crashes differ from the model:\n{last.log()}"
        committed = assert_replay_over(test_settings, last.log)
        assert read_detail(test_settings) == expected, "a replay changed the counts"
        wait_for_metrics(metrics_port)
        replayed = scrape_metric(metrics_port, "isales_events_duplicate_total")
        counted_last = scrape_metric(metrics_port, "isales_events_counted_total")

    figures(
        "row 1: worker crash (kill -9 x3)",
        {
            "seed": seed,
            "events": f"{len(stream):,} ({total:,} records and calls)",
            **{f"kill {n}": text for n, text in enumerate(kills, start=1)},
            "last worker": f"counted {counted_last:,.0f} new events, "
            f"{replayed:,.0f} already counted (replays and upstream duplicates)",
            "restart to exact": f"{to_exact:.1f} s",
            "result": "exact (= reference model), still exact with nothing left to replay",
            "committed": committed,
            "duration": f"{time.monotonic() - began:.0f} s",
        },
    )
