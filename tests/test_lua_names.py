"""The Lua scripts spell no counter name and no key suffix: they take them from the layout.

No Redis needed. ``isales_stats/core/keys.py`` defines the names; ``engine/scripts.py``
renders them into each script's prelude as ``COUNTER.<name>``, ``SUFFIX.<role>``,
``LIFE.<field>`` and ``HOUR_FIELD.<daily counter>``. A name
renamed in Python but not in a script must fail here, before any stream is counted wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib.resources import files

import pytest

from isales_stats.core import keys, windows
from isales_stats.engine import scripts

# Whole scripts beside engine/scripts.py and in a feature's folder (notifications/), and the
# counting script's parts (count_events/).
SCRIPTS = sorted(
    f"{folder}{entry.name}"
    for folder in ("", "notifications/")
    for entry in files("isales_stats.engine").joinpath(folder).iterdir()
    if entry.name.endswith(".lua")
) + [f"count_events/{part}" for part in scripts.COUNT_EVENTS_PARTS]
# A window hash's fields besides its buckets, by the names the prelude gives them.
WINDOW_FIELDS = {
    "life": windows.LIFE_FIELD,
    "last": windows.LAST_CALL_FIELD,
    "sums": windows.SUMS_FIELD,
}
# What a counter looks like (dailyCount, totalCallSucc, unCallCount...) and a key suffix
# (":records", ":day:"): such a literal in a script is a second spelling of the layout.
COUNTER_LIKE = re.compile(r"^[a-z]+(?:[A-Z][a-z]*)+(?:Count|Succ)$")
SUFFIX_LIKE = re.compile(r"^:[a-z_]+:?$")


def literals(lua: str) -> list[str]:
    """The contents of the script's string literals ('...' and "..."), comments left out."""
    code = re.sub(r"--[^\n]*", "", lua)
    found = re.finditer(r"'([^'\n]*)'|\"([^\"\n]*)\"", code)
    return [match[1] if match[1] is not None else match[2] for match in found]


def undefined_names(lua: str, counters: Iterable[str], suffixes: Iterable[str]) -> list[str]:
    """Every COUNTER.x, SUFFIX.x, LIFE.x, HOUR_FIELD.x, WINDOW_FIELD.x, BUCKET_PREFIX.x or
    BUCKET_COUNT.x of the script that the layout (keys.py, windows.py) does not define."""
    code = re.sub(r"--[^\n]*", "", lua)
    known = {
        "COUNTER": set(counters),
        "SUFFIX": set(suffixes),
        "LIFE": set(keys.LIFE_FIELDS),
        "HOUR_FIELD": set(keys.HOUR_COUNTERS),
        "WINDOW_FIELD": set(WINDOW_FIELDS),
        "BUCKET_PREFIX": set(windows.BUCKET_PREFIX),
        "BUCKET_COUNT": set(windows.BUCKET_FIELDS),
    }
    tables = "|".join(known)
    return [
        f"{table}.{name}"
        for table, name in re.findall(rf"\b({tables})\.(\w+)", code)
        if name not in known[table]
    ]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_script_names_only_counters_and_suffixes_the_layout_defines(script: str) -> None:
    undefined = undefined_names(
        scripts.script_source(script),
        (*keys.TOTAL_COUNTERS, *keys.DAILY_COUNTERS),
        keys.CAMPAIGN_KEY_SUFFIXES,
    )
    assert undefined == [], f"{script} names what isales_stats/core/keys.py does not define"


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_script_spells_no_counter_and_no_key_suffix_itself(script: str) -> None:
    spelled = [
        text
        for text in literals(scripts.script_source(script))
        if COUNTER_LIKE.match(text)
        or SUFFIX_LIKE.match(text)
        or text in keys.RESPONSE_COUNTERS
        or text in keys.CAMPAIGN_KEY_SUFFIXES.values()
        or text in keys.PROGRESS_FIELDS
        or text in keys.HOUR_COUNTERS.values()
        or text in WINDOW_FIELDS.values()
        # (not LIFE_FIELDS: "released" and "deleted" are also the states a script returns)
    ]
    assert spelled == [], f"{script} spells layout names itself: use COUNTER.x / SUFFIX.x"


def test_a_counter_renamed_in_python_but_not_in_lua_is_caught() -> None:
    """The check above, against a layout where totalCount was renamed and the Lua was not."""
    renamed = tuple(
        "totalRecordCount" if name == "totalCount" else name for name in keys.TOTAL_COUNTERS
    )
    undefined = undefined_names(
        scripts.part_source("count_events", "rules.lua"),
        (*renamed, *keys.DAILY_COUNTERS),
        keys.CAMPAIGN_KEY_SUFFIXES,
    )
    assert "COUNTER.totalCount" in undefined


def test_the_prelude_defines_every_name_of_the_layout_once() -> None:
    prelude = scripts.prelude()
    for name in (*keys.TOTAL_COUNTERS, *keys.DAILY_COUNTERS):
        assert prelude.count(f"{name} = '{name}'") == 1
    for role, suffix in keys.CAMPAIGN_KEY_SUFFIXES.items():
        assert f"{role} = '{suffix}'" in prelude
    for name in keys.LIFE_FIELDS:
        assert prelude.count(f"{name} = '{name}'") == 1
    for name, short in keys.HOUR_COUNTERS.items():
        assert prelude.count(f"{name} = '{short}'") == 1
    for role, field in WINDOW_FIELDS.items():
        assert prelude.count(f"{role} = '{field}'") == 1
    for kind, letter in windows.BUCKET_PREFIX.items():
        assert f"{kind} = '{letter}'" in prelude
    for name, (kind, size) in windows.WINDOWS.items():
        assert f"{{name = '{name}', kind = '{kind}', size = {size}}}" in prelude
    # A bucket's counts, by their place in "calls,connects,abandoned,finished".
    for place, name in enumerate(windows.BUCKET_FIELDS, start=1):
        assert f"{name} = {place}" in prelude
    # The packed rows follow the layout's order.
    assert (
        "local TOTAL_FIELDS = {" + ", ".join(f"COUNTER.{name}" for name in keys.TOTAL_COUNTERS)
        in prelude
    )
