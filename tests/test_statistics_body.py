"""engine/statistics.py writes the body from the engine's packed rows: what it lets through.

Pure logic, no Redis: the round trip through Redis is in tests/test_api_statistics.py.
"""

from __future__ import annotations

import pytest

from isales_stats.engine.statistics import CorruptCounters, check_rows

TOTALS = b"5,2,3,2,1"
DAILY = b"3,2,1,5"


@pytest.mark.parametrize(
    ("totals", "daily"),
    [
        ({b"": TOTALS}, {}),  # no event today
        ({b"": TOTALS, b"B1": TOTALS, b"B2": b"0,0,0,0,0"}, {b"": DAILY, b"B1": DAILY}),
    ],
)
def test_rows_as_the_engine_writes_them_pass(
    totals: dict[bytes, bytes], daily: dict[bytes, bytes]
) -> None:
    check_rows("C1", totals, daily)


@pytest.mark.parametrize(
    "bad",
    [
        b"1e3,2,3,2,1",  # a float in exponent form
        b"1.5,2,3,2,1",  # a fraction
        b"-1,2,3,2,1",  # a negative count
        b"007,2,3,2,1",  # leading zeros: not a JSON number
        b",2,3,2,1",  # an empty field
        b"1,2,3,2",  # four totals
        b"1,2,2,3,2,1",  # six: a stored "1,2"
        b" 1,2,3,2,1",  # a space
        b'1,2,3,2,1"',  # a quote that would end the JSON string early
    ],
)
def test_anything_else_is_refused_naming_the_campaign(bad: bytes) -> None:
    with pytest.raises(CorruptCounters, match="campaign 'C1'"):
        check_rows("C1", {b"": TOTALS, b"B1": bad}, {b"": DAILY})


@pytest.mark.parametrize("bad", [b"1,2,3", b"1,2,3,4,5", b"1,2,x,4", b"1,2,-3,4"])
def test_daily_rows_are_checked_too(bad: bytes) -> None:
    with pytest.raises(CorruptCounters, match="campaign 'C1'"):
        check_rows("C1", {b"": TOTALS, b"B1": TOTALS}, {b"": DAILY, b"B1": bad})


def test_a_campaign_without_its_own_row_is_refused() -> None:
    with pytest.raises(CorruptCounters):
        check_rows("C1", {b"B1": TOTALS}, {})
