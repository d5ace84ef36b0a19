"""``isales-stats simulate``: publish a dialer's traffic, or write it (``commands/simulate.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from isales_stats.commands.cli.command import Subcommands, add_command
from isales_stats.core.settings import Settings

DESCRIPTION = """\
Publish realistic campaign traffic to the call-events topic: records imported
in batches, called, retried, finished or removed, with a few results pushed
twice. Runs until the traffic is used up, --events are sent or --duration is
over; Ctrl-C stops it cleanly. Deterministic with --seed (and --now). --expect
writes the statistics the API should then serve; --output writes the events
instead of sending them. Exit status 0, 1 when some events were not
acknowledged by Kafka, 2 when it cannot start.

Reads the ISALES_KAFKA_* settings, ISALES_CALL_EVENTS_TOPIC, the VDN's time
zone (ISALES_DEFAULT_TIME_ZONE, ISALES_VDN_TIME_ZONES),
ISALES_CALLBACK_FINAL_FAIL_CODES and ISALES_FUTURE_TOLERANCE_SECONDS.

Examples:
  isales-stats simulate --vdn 1 --campaigns 2 --rate 50 --duration 60
  isales-stats simulate --timeline midnight --seed 7 --expect expected.json
"""


def register(commands: Subcommands) -> None:
    simulate = add_command(
        commands,
        "simulate",
        help="publish realistic campaign traffic (imports, calls, retries, removals)",
        description=DESCRIPTION,
        run=run_simulate,
    )
    shape = simulate.add_argument_group("the traffic")
    shape.add_argument("--vdn", type=int, default=1, help="the VDN (1)")
    shape.add_argument("--campaigns", type=int, default=3, help="campaigns (3)")
    shape.add_argument("--batches", type=int, default=2, help="batches per campaign (2)")
    shape.add_argument("--records", type=int, default=200, help="records per batch (200)")
    shape.add_argument("--first-campaign", type=int, default=1001, help="first campaignId (1001)")
    shape.add_argument("--connect-rate", type=float, default=0.45, help="calls answered (0.45)")
    shape.add_argument("--max-attempts", type=int, default=3, help="calls per record (3)")
    shape.add_argument("--remove-rate", type=float, default=0.03, help="records removed (0.03)")
    shape.add_argument(
        "--duplicate-rate", type=float, default=0.01, help="results pushed twice (0.01)"
    )
    shape.add_argument(
        "--timeline",
        choices=["live", "day", "midnight"],
        default="live",
        help="live: stamped when sent; day: spread over the last 24 h; midnight: the two "
        "hours around the last midnight in the VDN's zone (default live)",
    )
    shape.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    shape.add_argument(
        "--now", default=None, help="anchor the timeline here (ISO-8601 with offset) not now"
    )
    pace = simulate.add_argument_group("pace and output")
    pace.add_argument("--rate", type=float, default=0.0, help="events/s (0: as fast as possible)")
    pace.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    pace.add_argument("--events", type=int, default=None, help="stop after N events")
    pace.add_argument(
        "--expect", type=Path, default=None, help="write the statistics the API should serve"
    )
    pace.add_argument(
        "--output", type=Path, default=None, help="write JSON lines here (- stdout), not Kafka"
    )


def run_simulate(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.exit_status import EXIT_CANNOT_START
    from isales_stats.commands.simulate import random_seed, run_simulation
    from isales_stats.core.events import InvalidEvent, parse_occurred_at
    from isales_stats.producing.simulator import TrafficOptions

    try:
        now_ms = None if arguments.now is None else parse_occurred_at(arguments.now)
        options = TrafficOptions(
            vdn_id=arguments.vdn,
            campaigns=arguments.campaigns,
            batches=arguments.batches,
            records=arguments.records,
            first_campaign=arguments.first_campaign,
            connect_rate=arguments.connect_rate,
            max_attempts=arguments.max_attempts,
            remove_rate=arguments.remove_rate,
            duplicate_rate=arguments.duplicate_rate,
            timeline=arguments.timeline,
            seed=random_seed() if arguments.seed is None else arguments.seed,
            final_fail_codes=settings.final_fail_codes,
        )
    except (InvalidEvent, ValueError) as error:
        print(f"isales-stats simulate: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    return run_simulation(
        settings,
        options,
        rate=arguments.rate,
        duration=arguments.duration,
        max_events=arguments.events,
        now_ms=now_ms,
        expect_path=arguments.expect,
        output_path=arguments.output,
    )
