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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from operator import itemgetter
from types import MappingProxyType
from typing import Literal, NamedTuple

from isales_stats.core.days import MINUTE_MS
from isales_stats.core.windows import BUCKET_FIELDS, WINDOWS

Basis = Literal["live", "all"]
BASES: tuple[Basis, ...] = ("live", "all")
Status = Literal["ok", "warning", "over"]
State = Literal["empty", "notStarted", "dialling", "stalled", "finished"]

# The windows a pace is measured over, by their length in minutes: the minute windows.
PACE_WINDOWS = MappingProxyType(
    {size: name for name, (kind, size) in WINDOWS.items() if kind == "minute"}
)
# Why a pace has no ETA.
ETA_FINISHED = "finished"
ETA_NOT_STARTED = "not started"
ETA_STALLED = "stalled"
ETA_NOTHING_FINISHED = f"no record finished in the last {max(PACE_WINDOWS)} minutes"


# The values below are named tuples, not frozen dataclasses: a whole VDN makes thousands of them
# per request, and a frozen dataclass costs several times a tuple to build.


class Counts(NamedTuple):
    """One bucket of a window hash, or a window's sum (BUCKET_FIELDS, in that order)."""

    calls: int = 0
    connects: int = 0
    abandoned: int = 0
    finished: int = 0

    def plus(self, other: Counts) -> Counts:
        return Counts(
            self.calls + other.calls,
            self.connects + other.connects,
            self.abandoned + other.abandoned,
            self.finished + other.finished,
        )


ZERO = Counts()
# A scope's parts besides its totals, in the order of ScopeCounts.numbers: today's day bucket,
# its life, then each window's sum (WINDOWS).
PARTS = ("today", "life", *WINDOWS)
WIDTH = len(BUCKET_FIELDS)
_AT = {part: index * WIDTH for index, part in enumerate(PARTS)}
# Where each of BUCKET_FIELDS stands within a part.
_CALLS, _CONNECTS, _ABANDONED, _FINISHED = (
    BUCKET_FIELDS.index(name) for name in ("calls", "connects", "abandoned", "finished")
)


class ScopeCounts(NamedTuple):
    """What a scope's decisions are made from: its totals (the statistics' totalCount,
    totalCalledCount, totalCallSucc, totalFinishCount), its parts (PARTS: its day bucket of
    today, its life and each window's sum at the reader's now, BUCKET_FIELDS each, as one flat
    sequence: the reader makes no object per part, which cost more than the read itself), and
    the epoch minute of its latest call (None: it made none). ``of`` builds one from parts."""

    records: int = 0
    calls: int = 0
    connects: int = 0
    finished: int = 0
    numbers: Sequence[int] = (0,) * (len(PARTS) * WIDTH)
    last_call_minute: int | None = None

    @classmethod
    def of(
        cls,
        records: int = 0,
        calls: int = 0,
        connects: int = 0,
        finished: int = 0,
        *,
        today: Counts = ZERO,
        life: Counts = ZERO,
        windows: Mapping[str, Counts] = MappingProxyType({}),
        last_call_minute: int | None = None,
    ) -> ScopeCounts:
        """A scope from its parts; a window left out summed nothing."""
        parts = [today, life, *(windows.get(name, ZERO) for name in WINDOWS)]
        numbers = tuple(number for part in parts for number in part)
        return cls(records, calls, connects, finished, numbers, last_call_minute)

    def part(self, name: str) -> Counts:
        """One of PARTS."""
        at = _AT[name]
        return Counts._make(self.numbers[at : at + WIDTH])

    @property
    def today(self) -> Counts:
        return self.part("today")

    @property
    def life(self) -> Counts:
        return self.part("life")

    @property
    def windows(self) -> dict[str, Counts]:
        return {name: self.part(name) for name in WINDOWS}


def total_of(scopes: Iterable[ScopeCounts]) -> ScopeCounts:
    """Scopes added up (a VDN's campaigns): every count summed, the latest call the latest."""
    scopes = list(scopes)
    lasts = [scope.last_call_minute for scope in scopes if scope.last_call_minute is not None]
    if not scopes:
        return ScopeCounts()
    return ScopeCounts(
        sum(scope.records for scope in scopes),
        sum(scope.calls for scope in scopes),
        sum(scope.connects for scope in scopes),
        sum(scope.finished for scope in scopes),
        tuple(map(sum, zip(*(scope.numbers for scope in scopes), strict=True))),
        max(lasts, default=None),
    )


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
    # The limit as a fraction of the denominator (3 % -> 3/100), and its warning fraction, each
    # also as (numerator, denominator): compared with thousands of rates per request.
    limit: Fraction = field(init=False)
    warning: Fraction = field(init=False)
    _over: tuple[int, int] = field(init=False, repr=False)
    _warning: tuple[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        limit = _decimal(self.limit_percent) / 100
        warning = limit * _decimal(self.warning_fraction)
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "warning", warning)
        object.__setattr__(self, "_over", (limit.numerator, limit.denominator))
        object.__setattr__(self, "_warning", (warning.numerator, warning.denominator))

    @property
    def warning_percent(self) -> float:
        return rounded(self.warning * 100)

    def status(self, abandoned: int, denominator: int) -> Status:
        """``over`` when abandoned / denominator is above the limit, ``warning`` from its
        warning fraction on, else ``ok``: compared exactly, by cross-multiplying integers."""
        over, over_of = self._over
        if abandoned * over_of > over * denominator:
            return "over"
        warning, warning_of = self._warning
        return "warning" if abandoned * warning_of >= warning * denominator else "ok"


class AbandonRate(NamedTuple):
    """A window's abandoned calls over its denominator, and where that stands to the limit."""

    abandoned: int
    denominator: int
    rate_percent: float | None  # None: no denominator
    status: Status


# Built from a tuple without the Python-level __new__ of a named tuple: a whole VDN builds
# thousands per request.
_abandon_rate = partial(tuple.__new__, AbandonRate)


def denominator_of(counts: Counts, basis: Basis) -> int:
    """``live``: calls a person answered (connected or abandoned); ``all``: every call."""
    return counts.calls if basis == "all" else counts.connects + counts.abandoned


def abandon_rate(counts: Counts, basis: Basis, limit: AbandonLimit) -> AbandonRate:
    """``over`` above the limit, ``warning`` from its warning fraction on, compared exactly:
    abandoned / denominator against each fraction, by cross-multiplying integers."""
    return rate_of(counts.abandoned, denominator_of(counts, basis), limit)


def rate_of(abandoned: int, denominator: int, limit: AbandonLimit) -> AbandonRate:
    """``abandoned`` calls over ``denominator`` and where that stands to ``limit``."""
    if denominator == 0:
        return _abandon_rate((abandoned, 0, None, "ok"))
    rate = ratio(abandoned, denominator, 100)
    return _abandon_rate((abandoned, denominator, rate, limit.status(abandoned, denominator)))


# The four windows an abandon rate is reported over, by their name in the answer: today's day
# bucket, the rolling 24 hours and 30 days, the scope's life.
ABANDON_WINDOWS = MappingProxyType(
    {"today": "today", "rolling24h": "h24", "rolling30d": "d30", "life": "life"}
)


def abandon_rates(scope: ScopeCounts, basis: Basis, limit: AbandonLimit) -> dict[str, AbandonRate]:
    """The abandon rate of each of ABANDON_WINDOWS."""
    return {
        name: rate_of(abandoned, denominator, limit)
        for name, abandoned, denominator in abandon_counts(scope, basis)
    }


_ABANDON_AT = tuple((name, _AT[part]) for name, part in ABANDON_WINDOWS.items())


def abandon_counts(scope: ScopeCounts, basis: Basis) -> list[tuple[str, int, int]]:
    """Each of ABANDON_WINDOWS: its name, its abandoned calls and its denominator (its rate
    follows from these two alone: rate_of)."""
    numbers, counts = scope.numbers, []
    for name, at in _ABANDON_AT:
        abandoned = numbers[at + _ABANDONED]
        denominator = (
            numbers[at + _CALLS] if basis == "all" else numbers[at + _CONNECTS] + abandoned
        )
        counts.append((name, abandoned, denominator))
    return counts


# --- pacing ---------------------------------------------------------------------------------


class Pace(NamedTuple):
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


# A scope's calls and its finished records in each pace window (PACE_WINDOWS' order, a tuple),
# taken from its numbers; where today's part stands in them.
_PACE_AT = tuple(_AT[name] for name in PACE_WINDOWS.values())
_pace_calls = itemgetter(*(at + _CALLS for at in _PACE_AT))
_pace_finished = itemgetter(*(at + _FINISHED for at in _PACE_AT))
_TODAY_AT = _AT["today"]
_NO_ETA_BECAUSE = MappingProxyType(
    {
        "empty": ETA_NOT_STARTED,
        "notStarted": ETA_NOT_STARTED,
        "stalled": ETA_STALLED,
        "finished": ETA_FINISHED,
    }
)
# As _abandon_rate: one per scope of a whole VDN, in the order of Pace's fields.
_pace = partial(tuple.__new__, Pace)


class Pacer:
    """The paces of many scopes at one moment (a whole VDN's answer).

    A scope's calls and finished records per minute follow from its three pace windows' counts
    alone, and a VDN's scopes have few distinct ones (a quiet scope's are all zero): each
    distinct set is worked out once per pacer, its dict shared by the scopes that have it (the
    paces are only read, never changed)."""

    def __init__(self, now_ms: int, stall_minutes: int) -> None:
        self.now_ms = now_ms
        self.now_minute = now_ms // MINUTE_MS
        self.stall_minutes = stall_minutes
        self._per_minute: dict[tuple[int, ...], dict[int, float]] = {}

    def _rates(self, counts: tuple[int, ...]) -> dict[int, float]:
        """Per minute of each pace window, for its count (in PACE_WINDOWS' order)."""
        rates = self._per_minute.get(counts)
        if rates is None:
            pairs = zip(PACE_WINDOWS, counts, strict=True)
            rates = self._per_minute[counts] = {size: ratio(count, size) for size, count in pairs}
        return rates

    def pace(self, scope: ScopeCounts) -> Pace:
        """A scope's pace, its windows summed at the pacer's moment."""
        records, finished_records, numbers = scope.records, scope.finished, scope.numbers
        remaining = max(records - finished_records, 0)
        state = state_of(scope, self.now_minute, self.stall_minutes)
        finished = _pace_finished(numbers)
        eta = None
        reason: str | None
        if state == "dialling":
            eta = eta_of(remaining, dict(zip(PACE_WINDOWS, finished, strict=True)), self.now_ms)
            reason = None if eta else ETA_NOTHING_FINISHED
        else:
            reason = _NO_ETA_BECAUSE[state]
        return _pace(
            (
                records,
                finished_records,
                remaining,
                # Records removed after they finished can leave more finished than known
                # records.
                _percent(min(finished_records, records), records),
                self._rates(_pace_calls(numbers)),
                self._rates(finished),
                _percent(numbers[_TODAY_AT + _CONNECTS], numbers[_TODAY_AT + _CALLS]),
                _percent(scope.connects, scope.calls),
                ratio(scope.calls, finished_records) if finished_records else None,
                scope.last_call_minute,
                state,
                eta,
                reason,
            )
        )


def pace(scope: ScopeCounts, now_ms: int, stall_minutes: int) -> Pace:
    """A scope's pace at ``now_ms``, its windows summed at that moment."""
    return Pacer(now_ms, stall_minutes).pace(scope)
