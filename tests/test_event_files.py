"""Event files as ``publish`` reads them (isales_stats/producing/event_files.py); no Kafka."""

from __future__ import annotations

import io
import os
from pathlib import Path

from isales_stats.producing.event_files import Unreadable, file_size, read_events


def test_json_lines_skip_blanks_and_hand_on_what_is_not_json() -> None:
    text = b'{"a": 1}\n\n  \nnot json\n{"b": 2}\n'
    read = list(read_events(io.BytesIO(text), len(text)))
    assert [where for where, _, _ in read] == [{"line": 1}, {"line": 4}, {"line": 5}]
    assert read[0][1] == {"a": 1}
    assert read[2][1] == {"b": 2}
    unreadable = read[1][1]
    assert isinstance(unreadable, Unreadable)
    assert unreadable.reason.startswith("not JSON: ")
    assert unreadable.text == "not json"
    assert read[-1][2] == 1.0  # the fraction of the file read so far


def test_a_json_array_is_read_element_by_element() -> None:
    read = list(read_events(io.BytesIO(b'\n [{"a": 1},\n {"b": 2}]\n'), 0))
    assert read == [({"element": 1}, {"a": 1}, 0.5), ({"element": 2}, {"b": 2}, 1.0)]


def test_a_broken_array_is_one_unreadable_item() -> None:
    ((where, item, done),) = read_events(io.BytesIO(b"[1, 2"), 0)
    assert where == {"element": None}
    assert isinstance(item, Unreadable)
    assert item.reason.startswith("not a JSON array: ")
    assert done == 1.0


def test_without_a_known_size_json_lines_report_no_fraction(tmp_path: Path) -> None:
    assert [done for *_, done in read_events(io.BytesIO(b"{}\n{}\n"), 0)] == [-1.0, -1.0]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"{}\n")
    with path.open("rb") as stream:
        assert file_size(stream) == 3
    read_end, write_end = os.pipe()
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        assert file_size(pipe) == 0  # a pipe has no size
