"""``isales-stats campaigns list | delete``: campaign lifecycles (``commands/campaigns.py``).

A group: ``register`` adds ``campaigns`` and each of its actions, with their handlers.
"""

from __future__ import annotations

import argparse

from isales_stats.commands.cli.command import Subcommands, add_command, add_command_group
from isales_stats.core.settings import Settings

DESCRIPTION = """\
Campaigns end by a campaign.closed event or by going idle; their memory is
released after a grace, their counters deleted after a retention
(docs/operations.md, "Campaigns that end"). 'list' shows where each campaign
of a VDN stands; 'delete' does both steps now, safely while workers count.
Both talk to Redis only.

Reads the ISALES_REDIS_* settings, ISALES_KEY_PREFIX, the time zones and the
ISALES_CAMPAIGN_* lifecycle settings.

Examples:
  isales-stats campaigns list --vdn 1
  isales-stats campaigns delete --vdn 1 --campaign 1001
"""

LIST_DESCRIPTION = """\
Every campaign of a VDN, live or released: its state, the records and callIds
it holds, its last active day and its next lifecycle step (in the VDN's time
zone, with "(due)" once that moment has passed), as a table or, with --json, a
JSON array (nextStepAt in epoch seconds).

Example:
  isales-stats campaigns list --vdn 1 --json
"""

DELETE_DESCRIPTION = """\
End a campaign now: its idempotence state and its counters go in one atomic
step, as the lifecycle does after the retention, and a tombstone makes the
counting script refuse its late events (they go to the dead-letter topic).
Idempotent; prints what was removed as JSON and logs it on stderr.

Example:
  isales-stats campaigns delete --vdn 1 --campaign 1001
"""


def register(commands: Subcommands) -> None:
    actions = add_command_group(
        commands,
        "campaigns",
        help="a VDN's campaigns and their lifecycle (list), or end one now (delete)",
        description=DESCRIPTION,
    )
    listing = add_command(
        actions,
        "list",
        help="every campaign of a VDN: state, records, next step",
        description=LIST_DESCRIPTION,
        run=run_list,
    )
    listing.add_argument("--vdn", type=int, required=True)
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    delete = add_command(
        actions,
        "delete",
        help="delete a campaign's state and counters now (idempotent; logged)",
        description=DELETE_DESCRIPTION,
        run=run_delete,
    )
    delete.add_argument("--vdn", type=int, required=True)
    delete.add_argument("--campaign", required=True)


def run_list(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.campaigns import list_campaigns

    return list_campaigns(settings, arguments.vdn, arguments.json)


def run_delete(arguments: argparse.Namespace, settings: Settings) -> int:
    from isales_stats.commands.campaigns import delete_campaign

    return delete_campaign(settings, arguments.vdn, arguments.campaign)
