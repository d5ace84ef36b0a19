"""The arithmetic of decisions (isales_stats/core/decisions.py): statuses, paces, ETAs.

Pure logic, no Redis. Statuses are compared exactly: the edges below sit on the limit and on
its warning fraction to the call, where a float would land either side.
"""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import pytest

from isales_stats.core.days import MINUTE_MS
from isales_stats.core.decisions import (
    ETA_FINISHED,
    ETA_NOT_STARTED,
    ETA_NOTHING_FINISHED,
    ETA_STALLED,
    AbandonLimit,
    Counts,
    ScopeCounts,
    abandon_rate,
    abandon_rates,
    eta_of,
    pace,
    ratio,
    rounded,
    total_of,
)
from isales_stats.core.windows import WINDOWS

US_RULE = AbandonLimit(limit_percent=3.0, warning_fraction=0.8)
NOW_MS = int(datetime(2026, 12, 8, 2, 15, 0, tzinfo=UTC).timestamp() * 1000)
NOW_MINUTE = NOW_MS // MINUTE_MS


def live(abandoned: int, connects: int) -> Counts:
    return Counts(calls=connects + abandoned + 7, connects=connects, abandoned=abandoned)


@pytest.mark.parametrize(
    ("counts", "status", "percent"),
    [
        (live(3, 97), "warning", 3.0),  # exactly 3 %: not over
        (live(11, 489), "ok", 2.2),
        (live(3, 96), "over", 3.03),  # 3/99
        (live(12, 488), "warning", 2.4),  # exactly the warning fraction, 2.4 %
        (live(12, 489), "ok", 2.4),  # 12/501 = 2.395...: rounds to 2.40, still ok
        (live(0, 0), "ok", None),  # nothing answered: no rate
        (live(1, 0), "over", 100.0),
    ],
)
def test_a_status_compares_the_exact_fraction_not_the_rounded_rate(
    counts: Counts, status: str, percent: float | None
) -> None:
    rate = abandon_rate(counts, "live", US_RULE)
    assert (rate.status, rate.rate_percent) == (status, percent)
    assert rate.denominator == counts.connects + counts.abandoned
    assert rate.abandoned == counts.abandoned


def test_the_all_basis_divides_by_every_call() -> None:
    counts = Counts(calls=200, connects=50, abandoned=3)
    assert abandon_rate(counts, "all", US_RULE).rate_percent == 1.5
    assert abandon_rate(counts, "all", US_RULE).status == "ok"
    assert abandon_rate(counts, "live", US_RULE).status == "over"  # 3/53


def test_a_limit_is_the_decimal_it_was_written_as() -> None:
    """2.3 % is not a binary float; 23 of 1000 live calls is exactly that limit, not over it,
    and 0.7 of it is exactly 161 of 10,000."""
    limit = AbandonLimit(limit_percent=2.3, warning_fraction=0.7)
    assert limit.limit == Fraction(23, 1000)
    assert limit.warning == Fraction(161, 10000)
    assert limit.warning_percent == 1.61
    assert abandon_rate(Counts(1000, 977, 23), "live", limit).status == "warning"
    assert abandon_rate(Counts(1000, 976, 24), "live", limit).status == "over"
    assert abandon_rate(Counts(10000, 9839, 161), "live", limit).status == "warning"
    assert abandon_rate(Counts(10000, 9840, 160), "live", limit).status == "ok"
    assert US_RULE.warning_percent == 2.4


def test_rounding_is_to_two_decimals_halves_up() -> None:
    assert rounded(Fraction(1, 8) * 100) == 12.5
    assert rounded(Fraction(12345, 1000)) == 12.35
    assert rounded(Fraction(2, 3) * 100) == 66.67
    assert rounded(Fraction(0)) == 0.0


def test_the_integer_ratio_rounds_as_the_fraction_does() -> None:
    for whole in range(1, 120):
        for part in range(0, 3 * whole):
            assert ratio(part, whole, 100) == rounded(Fraction(part, whole) * 100)
            assert ratio(part, whole) == rounded(Fraction(part, whole))


def windows(**sums: Counts) -> MappingProxyType[str, Counts]:
    return MappingProxyType({name: sums.get(name, Counts()) for name in WINDOWS})


def scope(**fields: Any) -> ScopeCounts:
    return ScopeCounts.of(**fields)


def test_the_four_windows_of_an_abandon_rate() -> None:
    counted = scope(
        today=live(1, 9),
        life=live(4, 96),
        windows=windows(h24=live(2, 98), d30=live(4, 46)),
    )
    rates = abandon_rates(counted, "live", US_RULE)
    assert {name: rate.rate_percent for name, rate in rates.items()} == {
        "today": 10.0,
        "rolling24h": 2.0,
        "rolling30d": 8.0,
        "life": 4.0,
    }


def test_a_vdns_total_adds_its_campaigns_up() -> None:
    one = scope(records=10, calls=4, today=Counts(1, 1), windows=windows(m5=Counts(2, 1, 1, 1)),
                last_call_minute=5)  # fmt: skip
    two = scope(records=5, finished=3, life=Counts(7), windows=windows(m5=Counts(1)),
                last_call_minute=9)  # fmt: skip
    total = total_of([one, two, scope()])
    assert (total.records, total.calls, total.finished) == (15, 4, 3)
    assert total.windows["m5"] == Counts(3, 1, 1, 1)
    assert (total.today, total.life) == (Counts(1, 1), Counts(7))
    assert total.last_call_minute == 9
    assert total_of([]) == ScopeCounts()


@pytest.mark.parametrize(
    ("fields", "state", "reason"),
    [
        ({}, "empty", ETA_NOT_STARTED),
        ({"records": 4}, "notStarted", ETA_NOT_STARTED),
        ({"records": 4, "finished": 4, "last_call_minute": NOW_MINUTE}, "finished", ETA_FINISHED),
        # Removed records can leave more finished than known: finished all the same.
        ({"records": 4, "finished": 6, "last_call_minute": NOW_MINUTE}, "finished", ETA_FINISHED),
        # Ten minutes without a call, the current one included: stalled.
        ({"records": 4, "last_call_minute": NOW_MINUTE - 10}, "stalled", ETA_STALLED),
        ({"records": 4, "last_call_minute": NOW_MINUTE - 9}, "dialling", ETA_NOTHING_FINISHED),
    ],
)
def test_a_scopes_state_and_why_it_has_no_eta(
    fields: dict[str, int], state: str, reason: str
) -> None:
    paced = pace(scope(**fields), NOW_MS, stall_minutes=10)
    assert (paced.state, paced.eta, paced.eta_reason) == (state, None, reason)


def test_the_eta_spans_the_fastest_and_slowest_recent_pace() -> None:
    """100 records remain. 10 finished in 5 minutes (2 a minute: 50 minutes), 15 in 15 (1 a
    minute: 100 minutes), 30 in 60 (half a minute: 200 minutes)."""
    counted = scope(
        records=130,
        finished=30,
        calls=90,
        connects=45,
        today=Counts(calls=40, connects=10),
        last_call_minute=NOW_MINUTE,
        windows=windows(
            m5=Counts(calls=20, finished=10),
            m15=Counts(calls=33, finished=15),
            m60=Counts(calls=90, finished=30),
        ),
    )
    paced = pace(counted, NOW_MS + 400, stall_minutes=10)
    assert paced.state == "dialling"
    assert paced.eta_reason is None
    now_s = NOW_MS // 1000
    # Rounded up to the second: 400 ms past the minute counts as the next second.
    assert paced.eta == (now_s + 50 * 60 + 1, now_s + 200 * 60 + 1)
    assert paced.remaining_records == 100
    assert paced.percent_complete == 23.08
    assert paced.calls_per_minute == {5: 4.0, 15: 2.2, 60: 1.5}
    assert paced.finished_per_minute == {5: 2.0, 15: 1.0, 60: 0.5}
    assert (paced.connect_rate_today, paced.connect_rate_life) == (25.0, 50.0)
    assert paced.attempts_per_finished_record == 3.0
    assert paced.last_call_minute == NOW_MINUTE


def test_an_eta_skips_windows_that_finished_nothing() -> None:
    # Only the hour finished any: earliest and latest are the same moment.
    assert eta_of(3, {5: 0, 15: 0, 60: 6}, 0) == (30 * 60, 30 * 60)
    assert eta_of(3, {5: 0, 15: 0, 60: 0}, 0) is None
    # Seven remaining at 3 per 5 minutes: 11 min 40 s.
    assert eta_of(7, {5: 3, 15: 3, 60: 3}, 0) == (700, 140 * 60)


def test_no_figure_divides_by_zero() -> None:
    paced = pace(scope(records=0), NOW_MS, stall_minutes=10)
    assert paced.percent_complete is None
    assert (paced.connect_rate_today, paced.connect_rate_life) == (None, None)
    assert paced.attempts_per_finished_record is None
    assert paced.calls_per_minute == {5: 0.0, 15: 0.0, 60: 0.0}
