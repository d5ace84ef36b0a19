"""engine/statistics.py writes the body from the script's packed counters: what it lets through.

Pure logic, no Redis: the round trip through Redis is in tests/test_api_statistics.py.
"""

from __future__ import annotations

import orjson
import pytest

from engine.keys import RESPONSE_COUNTERS
from engine.statistics import CorruptCounters, check_packed_counters

ELEVEN = b"5,2,3,2,1,3,2,1,5,3,1"


@pytest.mark.parametrize("scopes", [[ELEVEN], [ELEVEN, b"0,0,0,0,0,0,0,0,0,0,0", ELEVEN]])
def test_counters_as_the_engine_writes_them_pass(scopes: list[bytes]) -> None:
    check_packed_counters("C1", scopes)
    values = orjson.loads(b"[" + b",".join(scopes) + b"]")
    assert len(values) == len(RESPONSE_COUNTERS) * len(scopes)


@pytest.mark.parametrize(
    "bad",
    [
        b"1e3,2,3,2,1,3,2,1,5,3,1",  # a float in exponent form
        b"1.5,2,3,2,1,3,2,1,5,3,1",  # a fraction
        b"-1,2,3,2,1,3,2,1,5,3,1",  # a negative count
        b"007,2,3,2,1,3,2,1,5,3,1",  # leading zeros: not a JSON number
        b",2,3,2,1,3,2,1,5,3,1",  # an empty field
        b"1,2,3,2,1,3,2,1,5,3",  # ten counters
        b"1,2,2,3,2,1,3,2,1,5,3,1",  # twelve: a stored "1,2"
        b" 1,2,3,2,1,3,2,1,5,3,1",  # a space
        b'1,2,3,2,1,3,2,1,5,3,1"',  # a quote that would end the JSON string early
    ],
)
def test_anything_else_is_refused_naming_the_campaign(bad: bytes) -> None:
    with pytest.raises(CorruptCounters, match="campaign 'C1'"):
        check_packed_counters("C1", [ELEVEN, bad])
