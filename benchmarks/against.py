"""Another revision's worker against this tree's, on the same stream, taken in turn.

    python -m benchmarks.against REV [RUNS]
    python -m benchmarks.against REV [RUNS] --freshness

What a change to the write path costs, measured the way this shared machine allows: REV is
checked out into a temporary worktree, the engine benchmark's stream is published once, and
REV's worker and this tree's count it alternately, RUNS times each (3 by default), each run on
an empty private Redis with the local stack's settings. Printed: events/s, the worker's and
Redis' CPU-seconds per million events (from /proc, steadier than wall time) and AOF bytes per
event, their medians and this tree's ratio to REV's. With ``--freshness``: this tree's
capacity is measured as the engine benchmark does, then both workers take 50 % of it in turn,
RUNS times each, with the engine benchmark's freshness run (p50/p99 from publish to counted).
Not part of ``make bench``: it needs a revision; the figures it printed go where the change
is described.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.engine import (
    CAMPAIGNS,
    EVENTS,
    WorkerRun,
    _capacity,
    _clean_up,
    _fresh_settings,
    _freshness,
    _identities,
    _worker_rate,
)
from isales_stats.commands.launch import cli_command
from isales_stats.commands.stack import Stack
from isales_stats.commands.stack.redis import RedisServer
from isales_stats.core.settings import Settings
from tests.support.kafka_topics import publish
from tests.support.ports import free_port
from tests.support.streams import campaign_stream

ROOT = Path(__file__).resolve().parents[1]


def main(revision: str, runs: int, freshness: bool = False, spread_hours: float = 30) -> str:
    """The table (or, with ``freshness``, the freshness table); ``spread_hours`` shapes the
    stream (tests/support/streams.py: 30, the engine benchmark's; 1, a live dialer's)."""
    dev = Settings()
    report = Stack(dev).up()
    with tempfile.TemporaryDirectory(prefix="isales-against-") as directory:
        worktree = Path(directory) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree),
                        revision], check=True, capture_output=True)  # fmt: skip
        base = dev.model_copy(
            update={
                "redis_url": f"redis://127.0.0.1:{free_port()}/0",
                "stack_dir": Path(directory) / "stack",
            }
        )
        redis_server = RedisServer(base)
        redis_server.ensure_running()
        settings = _fresh_settings(base)
        try:
            if freshness:
                return _freshness_in_turn(revision, base, worktree, runs)
            stream = campaign_stream(
                EVENTS, campaigns=CAMPAIGNS, batches=5, seed=5, spread_hours=spread_hours
            )
            publish(settings, stream)
            identities = _identities(stream)
            theirs: list[WorkerRun] = []
            ours: list[WorkerRun] = []
            for _ in range(runs):
                theirs.append(_worker_rate(settings, cli_command("worker"), len(stream),
                                           identities, cwd=worktree))  # fmt: skip
                ours.append(_worker_rate(settings, cli_command("worker"), len(stream), identities))
        finally:
            _clean_up(base, [settings])
            redis_server.stop()
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(worktree)], check=False, capture_output=True)  # fmt: skip
            Stack(dev).down(only=report.started)
    return _table(revision, theirs, ours, len(stream))


def _freshness_in_turn(revision: str, base: Settings, worktree: Path, runs: int) -> str:
    used: list[Settings] = []

    def fresh() -> Settings:
        settings = _fresh_settings(base)
        used.append(settings)
        return settings

    try:
        rate = 0.5 * _capacity(fresh())
        theirs, ours = [], []
        for _ in range(runs):
            theirs.append(_freshness(fresh(), rate, cwd=worktree))
            ours.append(_freshness(fresh(), rate))
    finally:
        _clean_up(base, used)
    lines = [
        f"Freshness at {rate:,.0f} events/s (50 % of this tree's capacity), {runs} runs each "
        "in turn: ms from publish() to counted.",
        "",
        f"| figure | {revision} | this tree |",
        "| --- | ---: | ---: |",
    ]
    for name in ("p50", "p90", "p99", "max", "batch_ms", "aof_per_event", "cpu_per_million"):
        lines.append(
            f"| {name} | {', '.join(f'{run[name]:.1f}' for run in theirs)} | "
            f"{', '.join(f'{run[name]:.1f}' for run in ours)} |"
        )
    return "\n".join(lines)


def _table(revision: str, theirs: list[WorkerRun], ours: list[WorkerRun], events: int) -> str:
    figures: dict[str, Callable[[WorkerRun], float]] = {
        "events/s": lambda run: run.rate,
        "worker CPU-s per 1M events": lambda run: run.cpu_per_million,
        "Redis CPU-s per 1M events": lambda run: (
            run.service_cpu_seconds["Redis"] * 1e6 / run.events
        ),
        "AOF B/event": lambda run: run.aof_per_event,
    }
    lines = [
        f"{events:,} events, {len(ours)} runs each, in turn; medians (each run in brackets).",
        "",
        f"| figure | {revision} | this tree | this tree / {revision} |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, figure in figures.items():
        old = statistics.median(figure(run) for run in theirs)
        new = statistics.median(figure(run) for run in ours)
        lines.append(
            f"| {name} | {old:,.1f} ({', '.join(f'{figure(r):,.0f}' for r in theirs)}) | "
            f"{new:,.1f} ({', '.join(f'{figure(r):,.0f}' for r in ours)}) | {new / old:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    arguments = [argument for argument in sys.argv[1:] if argument != "--freshness"]
    print(main(arguments[0], int(arguments[1]) if len(arguments) > 1 else 3,
               freshness="--freshness" in sys.argv))  # fmt: skip
