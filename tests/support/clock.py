"""Time in the tests: the dialer's zone and the moment now, as the events spell it."""

from __future__ import annotations

from datetime import UTC, datetime

# The zone of iSales' own examples and the engine's default (Settings.default_time_zone).
from isales_stats.core.reference_model import GMT8

__all__ = ["GMT8", "now_ms"]


def now_ms() -> int:
    """Now as epoch milliseconds, the ``occurredAt`` form producers send most."""
    return int(datetime.now(UTC).timestamp() * 1000)
