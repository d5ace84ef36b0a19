"""From counts to decisions: abandon rates against their limit, a scope's pace and its ETA.

Pure arithmetic over what engine/decisions.py reads (a scope's totals and its rolling windows,
isales_stats/core/windows.py), shared by the API's abandon-rate and pacing interfaces
(docs/api.md, "Abandon rate" and "Pacing"). Every comparison is exact, on integers and
fractions: a rate of 2.999 % rounds to 3.00 for display but is not over a 3 % limit, and a
limit or fraction given as a decimal ("2.5") is compared as that decimal, not as its nearest
binary float. Only the figures shown are rounded, to two decimals, halves up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Literal

from isales_stats.core.days import MINUTE_MS
from isales_stats.core.windows import WINDOWS

Basis = Literal["live", "all"]
BASES: tuple[Basis, ...] = ("live", "all")
Status = Literal["ok", "warning", "over"]
State = Literal["empty", "notStarted", "dialling", "stalled", "finished"]

# The windows a pace is measured over, by their length in minutes: the minute windows.
PACE_WINDOWS = MappingProxyType(
    {size: name for name, (kind, size) in WINDOWS.items() if kind == "minute"}
)
# What an abandon rate is reported over: today's day bucket, two windows, the scope's life.
ROLLING_24H, ROLLING_30D = "h24", "d30"
# Why a pace has no ETA.
ETA_FINISHED = "finished"
ETA_NOT_STARTED = "not started"
ETA_STALLED = "stalled"
ETA_NOTHING_FINISHED = f"no record finished in the last {max(PACE_WINDOWS)} minutes"


@dataclass(frozen=True, slots=True)
class Counts:
    """One bucket of a window hash, or a window's sum (BUCKET_FIELDS, in that order)."""

    calls: int = 0
    connects: int = 0
    abandoned: int = 0
    finished: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.calls + other.calls,
            self.connects + other.connects,
            self.abandoned + other.abandoned,
            self.finished + other.finished,
        )


ZERO = Counts()
_NO_WINDOWS: Mapping[str, Counts] = MappingProxyType(dict.fromkeys(WINDOWS, ZERO))


@dataclass(frozen=True, slots=True)
class ScopeCounts:
    """What a scope's decisions are made from: its totals (the statistics' totalCount,
    totalCalledCount, totalCallSucc, totalFinishCount), its day bucket of today, its life,
    each window's sum at the reader's now (by WINDOWS name), and the epoch minute of its latest
    call (None: it made none)."""

    records: int = 0
    calls: int = 0
    connects: int = 0
    finished: int = 0
    today: Counts = ZERO
    life: Counts = ZERO
    windows: Mapping[str, Counts] = field(default_factory=lambda: _NO_WINDOWS)
    last_call_minute: int | None = None


def total_of(scopes: Iterable[ScopeCounts]) -> ScopeCounts:
    """Scopes added up (a VDN's campaigns): every count summed, the latest call the latest."""
    total = ScopeCounts()
    for scope in scopes:
        lasts = [m for m in (total.last_call_minute, scope.last_call_minute) if m is not None]
        total = ScopeCounts(
            total.records + scope.records,
            total.calls + scope.calls,
            total.connects + scope.connects,
            total.finished + scope.finished,
            total.today + scope.today,
            total.life + scope.life,
            MappingProxyType({name: total.windows[name] + scope.windows[name] for name in WINDOWS}),
            max(lasts, default=None),
        )
    return total


def rounded(value: Fraction) -> float:
    """``value`` to two decimals, halves up, as the float that prints so."""
    return float(Fraction(math.floor(value * 100 + Fraction(1, 2)), 100))


def ratio(part: int, whole: int, scale: int = 1) -> float:
    """``part / whole * scale`` to two decimals, halves up (``rounded``), in integers: a whole
    VDN works out thousands of these per request, and a Fraction each cost milliseconds."""
    return (200 * scale * part + whole) // (2 * whole) / 100


def _decimal(value: float) -> Fraction:
    """A setting's float as the decimal it was written as (3.0, 2.5, 0.8)."""
    return Fraction(repr(value))


# --- abandon rate ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AbandonLimit:
    """A VDN's abandon limit in percent of the denominator (Settings.abandon_limit_of) and the
    fraction of it from which a rate is a warning (ISALES_ABANDON_WARNING_FRACTION)."""

    limit_percent: float
    warning_fraction: float
    # The limit as a fraction of the denominator (3 % -> 3/100), and its warning fraction.
    limit: Fraction = field(init=False)
    warning: Fraction = field(init=False)

    def __post_init__(self) -> None:
        limit = _decimal(self.limit_percent) / 100
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "warning", limit * _decimal(self.warning_fraction))

    @property
    def warning_percent(self) -> float:
        return rounded(self.warning * 100)


@dataclass(frozen=True, slots=True)
class AbandonRate:
    """A window's abandoned calls over its denominator, and where that stands to the limit."""

    abandoned: int
    denominator: int
    rate_percent: float | None  # None: no denominator
    status: Status


def denominator_of(counts: Counts, basis: Basis) -> int:
    """``live``: calls a person answered (connected or abandoned); ``all``: every call."""
    return counts.calls if basis == "all" else counts.connects + counts.abandoned


def abandon_rate(counts: Counts, basis: Basis, limit: AbandonLimit) -> AbandonRate:
    """``over`` above the limit, ``warning`` from its warning fraction on, compared exactly."""
    denominator = denominator_of(counts, basis)
    if denominator == 0:
        return AbandonRate(counts.abandoned, 0, None, "ok")
    rate = Fraction(counts.abandoned, denominator)
    status: Status = "over" if rate > limit.limit else "warning" if rate >= limit.warning else "ok"
    return AbandonRate(counts.abandoned, denominator, rounded(rate * 100), status)


def abandon_rates(scope: ScopeCounts, basis: Basis, limit: AbandonLimit) -> dict[str, AbandonRate]:
    """The four windows an abandon rate is reported over, by their name in the answer."""
    return {
        "today": abandon_rate(scope.today, basis, limit),
        "rolling24h": abandon_rate(scope.windows[ROLLING_24H], basis, limit),
        "rolling30d": abandon_rate(scope.windows[ROLLING_30D], basis, limit),
        "life": abandon_rate(scope.life, basis, limit),
    }


# --- pacing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pace:
    """How far a scope is, how fast it goes, and when it may be done (epoch seconds)."""

    total_records: int
    finished_records: int
    remaining_records: int
    percent_complete: float | None
    calls_per_minute: dict[int, float]  # by window length in minutes (PACE_WINDOWS)
    finished_per_minute: dict[int, float]
    connect_rate_today: float | None
    connect_rate_life: float | None
    attempts_per_finished_record: float | None
    last_call_minute: int | None
    state: State
    eta: tuple[int, int] | None  # earliest, latest
    eta_reason: str | None


def _percent(part: int, whole: int) -> float | None:
    return ratio(part, whole, 100) if whole else None


def state_of(scope: ScopeCounts, now_minute: int, stall_minutes: int) -> State:
    """``stalled``: records remain and no call was made in the last ``stall_minutes`` minutes,
    the current one included."""
    if scope.records == 0:
        return "empty"
    if scope.finished >= scope.records:
        return "finished"
    if scope.last_call_minute is None:
        return "notStarted"
    if scope.last_call_minute <= now_minute - stall_minutes:
        return "stalled"
    return "dialling"


def eta_of(remaining: int, finished: Mapping[int, int], now_ms: int) -> tuple[int, int] | None:
    """The earliest and latest moments (epoch seconds, rounded up) at which ``remaining``
    records are done, at the fastest and the slowest of the paces ``finished`` records per
    window of so many minutes give; None when no window finished any."""
    # now + remaining / (count / minutes) minutes, in whole seconds rounded up: the earliest is
    # that of the fastest pace, the latest that of the slowest.
    done = [
        -(-(now_ms * count + remaining * minutes * MINUTE_MS) // (count * 1000))
        for minutes, count in finished.items()
        if count > 0
    ]
    return (min(done), max(done)) if done else None


def pace(scope: ScopeCounts, now_ms: int, stall_minutes: int) -> Pace:
    """A scope's pace at ``now_ms``, its windows summed at that moment."""
    remaining = max(scope.records - scope.finished, 0)
    state = state_of(scope, now_ms // MINUTE_MS, stall_minutes)
    finished = {size: scope.windows[name].finished for size, name in PACE_WINDOWS.items()}
    eta = None
    reason: str | None
    if state == "dialling":
        eta = eta_of(remaining, finished, now_ms)
        reason = None if eta else ETA_NOTHING_FINISHED
    else:
        reason = {
            "empty": ETA_NOT_STARTED,
            "notStarted": ETA_NOT_STARTED,
            "stalled": ETA_STALLED,
            "finished": ETA_FINISHED,
        }[state]
    return Pace(
        total_records=scope.records,
        finished_records=scope.finished,
        remaining_records=remaining,
        # Records removed after they finished can leave more finished than known records.
        percent_complete=_percent(min(scope.finished, scope.records), scope.records),
        calls_per_minute={
            size: ratio(scope.windows[name].calls, size) for size, name in PACE_WINDOWS.items()
        },
        finished_per_minute={size: ratio(count, size) for size, count in finished.items()},
        connect_rate_today=_percent(scope.today.connects, scope.today.calls),
        connect_rate_life=_percent(scope.connects, scope.calls),
        attempts_per_finished_record=(
            ratio(scope.calls, scope.finished) if scope.finished else None
        ),
        last_call_minute=scope.last_call_minute,
        state=state,
        eta=eta,
        eta_reason=reason,
    )
