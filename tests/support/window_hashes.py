"""A scope's window hash as the counting script stores it, and as the reference model says it
should be (isales_stats/core/windows.py, docs/adr/0008-rolling-windows.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from isales_stats.core.reference_model import NO_COUNTS, Bucket, BucketCounts, ReferenceModel
from isales_stats.core.windows import (
    BUCKET_PREFIX,
    LAST_CALL_FIELD,
    LIFE_FIELD,
    SUMS_FIELD,
    WINDOWS,
    Now,
)

_KIND_OF_PREFIX = {prefix: kind for kind, prefix in BUCKET_PREFIX.items()}


@dataclass(frozen=True)
class WindowHash:
    """What a window hash holds: the buckets its sums were worked out at (``at``), each
    window's sum by name, its buckets, its life and the epoch minute of its latest call."""

    at: Now
    sums: dict[str, BucketCounts]
    buckets: dict[Bucket, BucketCounts]
    life: BucketCounts
    last: int | None


def _counts(text: str) -> BucketCounts:
    calls, connects, abandoned, finished = map(int, text.split(","))
    return (calls, connects, abandoned, finished)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def window_fields(stored: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """A hash read with HGETALL, as text."""
    return {_text(field): _text(value) for field, value in stored.items()}


def parse_window_hash(stored: Mapping[bytes | str, bytes | str]) -> WindowHash | None:
    """A window hash read with HGETALL; None when there is none."""
    if not stored:
        return None
    fields = window_fields(stored)
    at, *sums = fields.pop(SUMS_FIELD).split(";")
    minute, hour, day = map(int, at.split(","))
    life = _counts(fields.pop(LIFE_FIELD))
    last = int(fields.pop(LAST_CALL_FIELD))
    buckets = {
        (_KIND_OF_PREFIX[field[0]], int(field[1:])): _counts(value)
        for field, value in fields.items()
    }
    return WindowHash(
        at=Now(minute, hour, day),
        sums=dict(zip(WINDOWS, map(_counts, sums), strict=True)),
        buckets=buckets,
        life=life,
        last=last,
    )


def expected_window_hash(
    model: ReferenceModel, vdn_id: int, campaign_id: str, batch_id: str | None, at: Now
) -> WindowHash | None:
    """The model's window hash of a scope whose sums were last worked out at ``at``; None for a
    scope without a call."""
    life = model.window_life(vdn_id, campaign_id, batch_id)
    if life == NO_COUNTS:
        return None
    return WindowHash(
        at=at,
        sums=model.window_sums(vdn_id, campaign_id, at, batch_id),
        buckets=model.window_buckets(vdn_id, campaign_id, at, batch_id),
        life=life,
        last=model.last_call_minute(vdn_id, campaign_id, batch_id),
    )
