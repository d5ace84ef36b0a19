"""Files of call events, as ``isales-stats publish`` reads them: JSON lines or one JSON array.

A file whose first non-blank character is ``[`` is one JSON array; anything else is JSON lines
(blank lines skipped). Each event comes with where it was (a line or an element number) and how
far through the file the reading is, so that a caller can report progress and name the events
it could not send. A line that is not JSON is handed on as ``Unreadable`` rather than raised:
one bad line must not stop the events after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

Where = dict[str, Any]
"""``{"line": N}`` (JSON lines) or ``{"element": N}`` (an array; None: the array itself)."""


@dataclass(frozen=True)
class Unreadable:
    """What stood where an event should have: the reason, and the text (first 1,000 chars)."""

    reason: str
    text: str


def read_events(stream: IO[bytes], total_bytes: int) -> Iterator[tuple[Where, Any, float]]:
    """(where, parsed event or Unreadable, fraction done or -1) of a JSON-lines or array file.

    ``total_bytes`` is the file's size (``file_size``), 0 when unknown (then the fraction of a
    JSON-lines file is -1).
    """
    position = 0
    number = 0
    for raw in stream:
        number += 1
        position += len(raw)
        if not raw.strip():
            continue
        if raw.lstrip().startswith(b"["):
            yield from _array_events(raw + stream.read())
            return
        done = position / total_bytes if total_bytes else -1.0
        try:
            yield {"line": number}, orjson.loads(raw), done
        except orjson.JSONDecodeError as error:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            yield {"line": number}, Unreadable(f"not JSON: {error}", text[:1000]), done


def _array_events(text: bytes) -> Iterator[tuple[Where, Any, float]]:
    try:
        elements = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        yield {"element": None}, Unreadable(f"not a JSON array: {error}", ""), 1.0
        return
    if not isinstance(elements, list):
        yield {"element": None}, Unreadable("not a JSON array", ""), 1.0
        return
    for index, element in enumerate(elements, start=1):
        yield {"element": index}, element, index / len(elements)


def file_size(stream: IO[bytes]) -> int:
    """The size of the file behind ``stream`` in bytes; 0 for stdin, a pipe or the unknown."""
    try:
        return Path(stream.name).stat().st_size if isinstance(stream.name, str) else 0
    except OSError:
        return 0
