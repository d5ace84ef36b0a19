"""What Redis writes for us: append-only file bytes, rewrites and the replication stream.

Redis replicates a script by its effects, so the AOF and every replica receive each write the
counting script makes: bytes per event is write amplification, on disk and on the network
(docs/adr/0004-write-amplification.md). Read from ``INFO persistence`` and ``INFO replication``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class AofMark:
    """Where the AOF's current increment file ends now: what is appended after it is new."""

    path: Path
    offset: int


def aof_mark(redis: Any) -> AofMark:
    """The end of the increment file ``redis`` appends to (Redis 7's multi-part AOF)."""
    directory = (
        Path(redis.config_get("dir")["dir"]) / redis.config_get("appenddirname")["appenddirname"]
    )
    manifest = directory / f"{redis.config_get('appendfilename')['appendfilename']}.manifest"
    increments = [
        line.split()[1] for line in manifest.read_text().splitlines() if line.split()[-1:] == ["i"]
    ]
    path = directory / increments[-1]
    return AofMark(path, path.stat().st_size)


def _commands(data: bytes) -> Iterator[tuple[list[bytes], int]]:
    """The RESP arrays in ``data``, each with its length in bytes."""
    position = 0
    while position < len(data):
        start = position
        end = data.index(b"\r\n", position)
        count = int(data[position + 1 : end])
        position = end + 2
        words = []
        for _ in range(count):
            end = data.index(b"\r\n", position)
            size = int(data[position + 1 : end])
            words.append(data[end + 2 : end + 2 + size])
            position = end + 2 + size + 2
        yield words, position - start


_DAY = re.compile(rb":day:\d{4}-\d{2}-\d{2}")
_BATCH = re.compile(rb":batch:[^:]*")


def _role(words: list[bytes]) -> str:
    """A command by what it writes: "HSET :day:D:records", "SADD :calls", "MULTI"..."""
    command = words[0].decode().upper()
    if len(words) < 2:
        return command
    key = words[1]
    if b"}" in key:
        suffix = _BATCH.sub(b":batch:B", _DAY.sub(b":day:D", key.rsplit(b"}", 1)[1]))
    else:
        suffix = re.sub(rb"^[^:]*:", b"", key).split(b":")[0] + b":..."
    return f"{command} {suffix.decode()}"


def bytes_by_write(mark: AofMark) -> dict[str, tuple[int, int]]:
    """What was appended to the AOF since ``mark``: role -> (commands, bytes), largest first."""
    with mark.path.open("rb") as appended:
        appended.seek(mark.offset)
        data = appended.read()
    found: dict[str, tuple[int, int]] = {}
    for words, size in _commands(data):
        role = _role(words)
        count, total = found.get(role, (0, 0))
        found[role] = (count + 1, total + size)
    return dict(sorted(found.items(), key=lambda item: -item[1][1]))
