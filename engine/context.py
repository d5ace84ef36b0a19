"""What counting, the lifecycle's sweep and the readers need to know besides Redis, in one
frozen object: the key layout, each VDN's time zone, how many days a day's counters are kept,
the clock, the counting limits, the changes kept for push, the campaigns' lifecycle and the
failCodes of an abandoned call.

The worker and the API build it once from Settings (``CountingContext.from_settings``); a test
builds one the same way and changes what it needs (a clock of its own, another key prefix)::

    context = CountingContext.from_settings(settings, clock=clock, retention_days=40)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Any

from isales_stats.core.days import Clock, system_clock
from isales_stats.core.keys import ABANDON_FAIL_CODES, KeyLayout
from isales_stats.core.settings import Settings
from isales_stats.engine.counting import DEFAULT_CHANGES_KEPT, NO_LIMITS, CountingLimits
from isales_stats.engine.lifecycle import LifecyclePolicy


def default_abandon_limit(vdn_id: int) -> float:
    """Settings' default abandon limit, 3 % of the live calls, for every VDN."""
    return 3.0


@dataclass(frozen=True)
class CountingContext:
    layout: KeyLayout
    zone_of: Callable[[int], tzinfo]  # a VDN's time zone (Settings.time_zone_of)
    retention_days: int  # a day's counters are kept this long (ISALES_DAILY_RETENTION_DAYS)
    policy: LifecyclePolicy  # how long an ended campaign's parts live (ISALES_CAMPAIGN_*)
    clock: Clock = system_clock
    limits: CountingLimits = NO_LIMITS
    # The changes a campaign's change stream keeps for push (0: none recorded).
    changes_kept: int = DEFAULT_CHANGES_KEPT
    # The failCodes of an abandoned call, comma-separated (ISALES_ABANDON_FAIL_CODES).
    abandon_fail_codes: str = ",".join(ABANDON_FAIL_CODES)
    # Notifications (ISALES_NOTIFICATIONS): decided, and a VDN's abandon limit in percent
    # (Settings.abandon_limit_of) and the fraction of it that is a warning.
    notifications: bool = True
    abandon_limit_of: Callable[[int], float] = default_abandon_limit
    abandon_warning_fraction: float = 0.8

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CountingContext:
        """The context of ``settings``; keyword ``overrides`` replace fields (tests: clock=...)."""
        context = cls(
            layout=KeyLayout(settings.key_prefix),
            zone_of=settings.time_zone_of,
            retention_days=settings.daily_retention_days,
            policy=LifecyclePolicy.from_settings(settings),
            limits=CountingLimits(
                campaigns_per_vdn=settings.max_campaigns_per_vdn,
                batches_per_campaign=settings.max_batches_per_campaign,
            ),
            changes_kept=settings.push_changes_kept,
            abandon_fail_codes=settings.abandon_fail_codes,
            notifications=settings.notifications,
            abandon_limit_of=settings.abandon_limit_of,
            abandon_warning_fraction=settings.abandon_warning_fraction,
        )
        return replace(context, **overrides) if overrides else context
