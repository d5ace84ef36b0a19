"""Time in the tests: the dialer's zone and the moment now, as the events spell it."""

from __future__ import annotations

from datetime import UTC, datetime

# The zone of iSales' own examples and the engine's default (Settings.default_time_zone).
from isales_stats.core.reference_model import GMT8

__all__ = ["GMT8", "SettableClock", "now_ms"]


class SettableClock:
    """A clock (isales_stats.core.days.Clock) that moves only when a test moves it."""

    def __init__(self, now: float | None = None) -> None:
        self.now = datetime.now(UTC).timestamp() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def now_ms() -> int:
    """Now as epoch milliseconds, the ``occurredAt`` form producers send most."""
    return int(datetime.now(UTC).timestamp() * 1000)
