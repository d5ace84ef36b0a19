"""The counting script and its Python half agree on every field's place: checked without Redis.

``engine/contract.py`` names an event's fields (PackedEvent) and the script's arguments
(CountingArguments) once; ``engine/scripts.py`` renders them into the Lua prelude as
``EVENT.<field>`` (a position) and ``ARG.<argument>`` (``ARGV[i]``). These tests fail when one
side reorders a field: Python's packer against the prelude's positions, the parts against the
names the contract defines, and any part that spells a position itself.
"""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from isales_stats.engine import contract, scripts

PARTS = scripts.COUNT_EVENTS_PARTS


def part(name: str) -> str:
    return re.sub(r"--[^\n]*", "", scripts.part_source("count_events", name))


def rendered_table(prelude: str, name: str) -> dict[str, str]:
    """``local NAME = strict('...', {a = 1, b = 2})`` of the prelude, as {a: "1", b: "2"}."""
    match = re.search(rf"local {name} = strict\('[^']*', \{{([^}}]*)\}}\)", prelude)
    assert match, f"the prelude defines no {name}"
    entries = (entry.split(" = ", 1) for entry in match[1].split(", "))
    return {key.strip(): value.strip().strip("'") for key, value in entries}


def test_the_parts_on_disk_are_the_parts_assembled() -> None:
    on_disk = {
        entry.name
        for entry in files("isales_stats.engine").joinpath("count_events").iterdir()
        if entry.name.endswith(".lua")
    }
    assert on_disk == set(PARTS)


def test_every_part_says_what_it_reads_and_writes() -> None:
    for name in PARTS:
        header = scripts.part_source("count_events", name).split("\n\n", 1)[0]
        assert header.startswith("-- Part: "), name
        assert "-- Reads:" in header, name
        assert "-- Writes:" in header, name


@pytest.mark.parametrize("name", PARTS)
def test_no_part_spells_a_position(name: str) -> None:
    code = part(name)
    assert not re.search(r"\b(?:ARGV|KEYS)\s*\[", code), f"{name}: use ARG.<argument>"
    assert not re.search(r"\bevent\s*\[\s*\d", code), f"{name}: use event[EVENT.<field>]"


@pytest.mark.parametrize("name", PARTS)
def test_a_part_names_only_what_the_contract_defines(name: str) -> None:
    defined = {
        "EVENT": set(contract.PackedEvent._fields),
        "ARG": set(contract.CountingArguments._fields),
        "VERDICT": set(contract.VERDICTS),
    }
    used = re.findall(r"\b(EVENT|ARG|VERDICT)\.(\w+)", part(name))
    undefined = [f"{table}.{field}" for table, field in used if field not in defined[table]]
    assert undefined == []


def sample_event() -> dict[str, object]:
    """A value per field, no two alike, so that a swap of any two shows."""
    return {
        "kind": "c",
        "data_id": "d-7",
        "call_id": "call-9",
        "batch_id": "b-3",
        "connected": True,
        "final": False,
        "day": "2026-03-08",
        "expire_at": 1_780_000_000,
        "hour": 23,
        "fail_code": "00701",
        "minute": 29_412_345,
    }


def as_sent(field: str, value: object) -> object:
    return (1 if value else 0) if isinstance(value, bool) else value


def test_pythons_packer_puts_each_field_where_the_prelude_reads_it() -> None:
    given = sample_event()
    packed = contract.packed_event(**given)  # type: ignore[arg-type]
    positions = rendered_table(scripts.contract_prelude(), "EVENT")
    assert set(positions) == set(given)
    for field, value in given.items():
        assert packed[int(positions[field]) - 1] == as_sent(field, value), field
    # and the named tuple reads it back the same way
    named = contract.PackedEvent._make(packed)
    assert {field: getattr(named, field) for field in given} == {
        field: as_sent(field, value) for field, value in given.items()
    }


def test_a_field_reordered_on_one_side_only_is_caught() -> None:
    """The check above, against a packer that swapped day and fail_code."""
    given = sample_event()
    swapped = list(contract.packed_event(**given))  # type: ignore[arg-type]
    day, fail = (
        contract.PackedEvent._fields.index("day"),
        contract.PackedEvent._fields.index("fail_code"),
    )
    swapped[day], swapped[fail] = swapped[fail], swapped[day]
    positions = rendered_table(scripts.contract_prelude(), "EVENT")
    misplaced = [
        field
        for field, value in given.items()
        if swapped[int(positions[field]) - 1] != as_sent(field, value)
    ]
    assert misplaced == ["day", "fail_code"]


def test_each_argument_is_the_argv_of_its_place() -> None:
    arguments = rendered_table(scripts.contract_prelude(), "ARG")
    assert list(arguments) == list(contract.CountingArguments._fields)
    for index, name in enumerate(contract.CountingArguments._fields, start=1):
        assert arguments[name] == f"ARGV[{index}]"


def test_the_verdicts_are_single_distinct_letters() -> None:
    letters = list(contract.VERDICTS.values())
    assert all(len(letter) == 1 for letter in letters)
    assert len(set(letters)) == len(letters)
    assert rendered_table(scripts.contract_prelude(), "VERDICT") == contract.VERDICTS


def test_the_assembled_script_opens_with_its_shebang_and_holds_every_part_in_order() -> None:
    source = scripts.load_count_events().source
    assert source.startswith("#!lua\n")
    marks = [source.index(f"-- part count_events/{name}\n") for name in PARTS]
    assert marks == sorted(marks)
