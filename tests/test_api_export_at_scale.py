"""A million rows from a real ``isales-stats api``, its memory flat: an export streams.

500 campaigns x 84 days x 24 hours of history by hour: 1,008,000 rows. The keys are written
straight in the layout the counting script keeps (KeyLayout, in pipelines), a few hours of each
day with counts and the others none (an hour with nothing counted is a row of zeros all the
same: the history answers every hour). While the rows arrive, the API process's resident memory
is read from /proc/<pid>/status; from the first part received to the last it may not grow by
more than 20 MiB. The figures are printed (``pytest -s``).
"""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from redis import Redis

from isales_stats.client import CONTENT_TYPE, HISTORY_EXPORT_PATH
from isales_stats.core.days import today_in
from isales_stats.core.keys import DAILY_COUNTERS, HOUR_COUNTERS, TOTAL_COUNTERS, KeyLayout
from isales_stats.core.settings import Settings
from tests.support.api_process import ApiProcess

pytestmark = [pytest.mark.stack, pytest.mark.slow]

VDN = 9
CAMPAIGNS = [f"campaign-{n:03d}" for n in range(500)]
DAYS = 84
ROWS = len(CAMPAIGNS) * DAYS * 24
MIB = 1024 * 1024
MAX_GROWTH = 20 * MIB
# The hours of each day with something counted: calls, connects, finished records, records.
BUSY_HOURS = {9: (3, 1, 1, 2), 14: (2, 2, 1, 1)}


def packed(values: dict[str, int], order: tuple[str, ...]) -> str:
    """A row as the counting script packs it: the counters in ``order``, comma-separated."""
    return ",".join(str(values[name]) for name in order)


def fill(settings: Settings, days: list[date]) -> None:
    """The VDN's campaigns with their totals, and each day's row and busy hours."""
    layout = KeyLayout(settings.key_prefix)
    calls = sum(hour[0] for hour in BUSY_HOURS.values())
    daily = dict(zip(DAILY_COUNTERS, map(sum, zip(*BUSY_HOURS.values(), strict=True)), strict=True))
    totals = {
        "totalCount": 50,
        "unCallCount": 0,
        "totalCalledCount": calls * len(days),
        "totalCallSucc": daily["dailyCallSucc"] * len(days),
        "totalFinishCount": 40,
    }
    hours = {
        f"{hour:02d}:{HOUR_COUNTERS[name]}": count
        for hour, counts in BUSY_HOURS.items()
        for name, count in zip(DAILY_COUNTERS, counts, strict=True)
    }
    with Redis.from_url(settings.redis_url) as redis:
        redis.sadd(layout.vdn_campaigns(VDN), *CAMPAIGNS)
        for campaign in CAMPAIGNS:
            pipe = redis.pipeline(transaction=False)
            pipe.hset(layout.campaign_rows(VDN, campaign), "", packed(totals, TOTAL_COUNTERS))
            for day in days:
                label = day.isoformat()
                pipe.hset(layout.day_rows(VDN, campaign, label), "", packed(daily, DAILY_COUNTERS))
                pipe.hset(layout.day_hours(VDN, campaign, label), mapping=hours)
            pipe.execute()


class CsvTotals:
    """What a CSV export's rows add up to, read a chunk at a time: rows, bytes and the sum of
    dailyCalledCount (its sixth column), which says that no row was lost or sent twice."""

    def __init__(self, first: bytes) -> None:
        header, _, rest = first.partition(b"\r\n")
        assert header.split(b",")[5] == b"dailyCalledCount"
        self.rows = self.calls = 0
        self.size = len(first) - len(rest)
        self.pending = b""
        self.add(rest)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        data = self.pending + chunk
        cut = data.rfind(b"\n") + 1
        self.pending = data[cut:]
        lines = data[:cut].split(b"\r\n")[:-1]
        self.rows += len(lines)
        self.calls += sum(int(line.split(b",")[5]) for line in lines)


class MemorySampler:
    """A process's VmRSS, read every ``interval`` seconds in a thread of its own."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.status = Path(f"/proc/{pid}/status")
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        for line in self.status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS in {self.status}")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_million_rows_stream_in_flat_memory(test_settings: Settings, tmp_path: Path) -> None:
    settings = test_settings.model_copy(
        update={"daily_retention_days": DAYS + 6, "access_log": False}
    )
    today = today_in(settings.time_zone_of(VDN))
    days = [today - timedelta(days=n) for n in reversed(range(DAYS))]
    began = time.monotonic()
    fill(settings, days)
    filled = time.monotonic() - began
    params = {
        "startDate": days[0].isoformat(),
        "endDate": days[-1].isoformat(),
        "interval": "hour",
        "format": "csv",
    }
    with ApiProcess(settings, log_dir=tmp_path) as api:
        assert api.process is not None
        sampler = MemorySampler(api.process.pid)
        idle = sampler.rss()
        with (
            httpx.Client(base_url=api.url, headers={"Content-Type": CONTENT_TYPE}) as http,
            http.stream("GET", HISTORY_EXPORT_PATH.format(vdn_id=VDN), params=params) as response,
        ):
            assert response.status_code == 200
            chunks = response.iter_bytes()
            first = next(chunks)  # the first part was read: the process holds what it needs
            started = time.monotonic()
            with sampler:
                totals = CsvTotals(first)
                for chunk in chunks:
                    totals.add(chunk)
            streamed = time.monotonic() - started
    assert totals.pending == b""
    expected_calls = len(CAMPAIGNS) * DAYS * sum(hour[0] for hour in BUSY_HOURS.values())
    growth = max(sampler.samples) - sampler.samples[0]
    print(
        f"\n{totals.rows:,} rows, {totals.size / MIB:,.1f} MiB of CSV in {streamed:.1f} s "
        f"({ROWS / streamed:,.0f} rows/s; Redis filled in {filled:.1f} s); API VmRSS: idle "
        f"{idle / MIB:.1f} MiB, at the first part {sampler.samples[0] / MIB:.1f} MiB, "
        f"highest {max(sampler.samples) / MIB:.1f} MiB, last {sampler.samples[-1] / MIB:.1f} MiB "
        f"({len(sampler.samples)} samples): grew {growth / MIB:.1f} MiB"
    )
    assert totals.rows == ROWS
    assert totals.calls == expected_calls
    assert len(sampler.samples) >= 10
    assert growth <= MAX_GROWTH
