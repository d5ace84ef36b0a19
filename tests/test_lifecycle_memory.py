"""Memory you can predict: steady traffic over simulated days levels off after the horizon.

A short run of the 90-day benchmark's traffic (tests/support/steady_traffic.py) on a private
Redis: campaigns open, are dialled, close, are released after their grace and deleted after a
retention of three days. Past the horizon what Redis holds (MEMORY USAGE of every key: exact,
unlike used_memory at this small scale) stays within 10 %, and the idempotence state per live
record stays what it was measured to be. The figures at full size: ``python -m benchmarks.run
lifecycle`` (docs/benchmarks.md, "Memory over 90 days of steady traffic").
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from isales_stats.core.settings import Settings
from tests.support.private_redis import private_redis
from tests.support.steady_traffic import TrafficShape, simulate

pytestmark = [pytest.mark.stack, pytest.mark.slow]

RETENTION_DAYS = 3
SHAPE = TrafficShape(days=16, campaigns_per_day=2, records_per_campaign=300, dialling_hours=(9, 10))


def test_what_redis_holds_levels_off_after_the_retention_horizon(
    test_settings: Settings, tmp_path: Path
) -> None:
    retention = test_settings.model_copy(update={"campaign_retention_days": RETENTION_DAYS})
    with private_redis(retention, tmp_path / "stack") as (settings, _):
        days, _, breakdown = asyncio.run(simulate(settings, SHAPE))

    horizon = SHAPE.horizon_days(RETENTION_DAYS)
    steady = [day for day in days if day.day >= horizon]
    assert len(steady) >= 6
    held = [day.dataset for day in steady]
    assert (max(held) - min(held)) / min(held) <= 0.10, held
    # Campaigns went the whole way: two a day released, then deleted, from the horizon on.
    assert steady[-1].released == SHAPE.campaigns_per_day * (SHAPE.days - SHAPE.dialling_days)
    assert steady[-1].deleted > 0
    assert all(day.live_records == 3 * SHAPE.campaigns_per_day * 300 for day in steady)
    # The state per live record, a guard against a layout that grows it (docs/adr/0005 weighs
    # one that would halve it): 139 bytes at this shape, 237 in the benchmark's longer days.
    assert all(day.state / day.live_records < 170 for day in steady)
    # What a deleted campaign leaves: its tombstone, a hundred-odd bytes.
    tombstones, deleted = breakdown["a deleted campaign's tombstone"]
    assert deleted == steady[-1].deleted
    assert tombstones / deleted < 200
