"""What Redis writes for us: append-only file bytes, rewrites and the replication stream.

Redis replicates a script by its effects, so the AOF and every replica receive each write the
counting script makes: bytes per event is write amplification, on disk and on the network
(docs/adr/0004-write-amplification.md). Read from ``INFO persistence`` and ``INFO replication``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WriteReading:
    at: float  # time.monotonic()
    aof_size: int  # aof_current_size: the base (RDB preamble) and the appended increments
    aof_base: int  # aof_base_size: the base as of the last rewrite
    rewrites: int  # aof_rewrites since the server started
    replication_offset: int  # master_repl_offset: bytes of the replication stream

    def aof_appended_since(self, before: WriteReading) -> int:
        """Bytes appended to the AOF since ``before``.

        Exact without a rewrite in between; after one, what was appended since that rewrite
        (a lower bound: a rewrite folds the earlier increments into the new base).
        """
        if self.rewrites == before.rewrites:
            return self.aof_size - before.aof_size
        return self.aof_size - self.aof_base

    def rewrites_per_minute_since(self, before: WriteReading) -> float:
        return (self.rewrites - before.rewrites) * 60 / max(self.at - before.at, 1e-9)


def read_writes(redis: Any) -> WriteReading:
    """A reading of ``redis`` (a synchronous redis-py client)."""
    persistence = redis.info("persistence")
    replication = redis.info("replication")
    return WriteReading(
        at=time.monotonic(),
        aof_size=int(persistence.get("aof_current_size", 0)),
        aof_base=int(persistence.get("aof_base_size", 0)),
        rewrites=int(persistence.get("aof_rewrites", 0)),
        replication_offset=int(replication.get("master_repl_offset", 0)),
    )
