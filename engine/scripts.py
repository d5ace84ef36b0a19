"""The engine's Lua scripts, each loaded behind a prelude rendered from the key layout.

Counter names, key suffixes and lifecycle fields are spelled once, in
``isales_stats/core/keys.py``. A script names them as ``COUNTER.totalCount``, ``SUFFIX.records``,
``LIFE.closed`` and ``HOUR_FIELD.dailyCount`` (a daily counter's name in an hour's field): the
prelude defines these tables from Python, and makes them strict, so that a name the layout does not
define is an error in Redis instead of a nil that writes a counter no reader knows.
``tests/test_lua_names.py`` checks the scripts against the layout without Redis: a counter
renamed in Python but not in a script fails it.
"""

from __future__ import annotations

from importlib.resources import files

from isales_stats.core.keys import (
    CAMPAIGN_KEY_SUFFIXES,
    CHANGE_FIELDS,
    DAILY_COUNTERS,
    HOUR_COUNTERS,
    LIFE_FIELDS,
    PROGRESS_FIELDS,
    TOTAL_COUNTERS,
)
from isales_stats.engine.redis_connection import LuaScript

PRELUDE_END = "-- end of the prelude"


def _lua_string(text: str) -> str:
    # Names and suffixes are plain ASCII without quotes (keys.py): no escaping needed.
    if not text.isascii() or "'" in text or "\\" in text:
        raise ValueError(f"not a plain name for Lua: {text!r}")
    return f"'{text}'"


def _lua_table(entries: dict[str, str]) -> str:
    return (
        "{" + ", ".join(f"{name} = {_lua_string(value)}" for name, value in entries.items()) + "}"
    )


def prelude() -> str:
    """The Lua lines that name what ``isales_stats.core.keys`` defines."""
    counters = {name: name for name in (*TOTAL_COUNTERS, *DAILY_COUNTERS)}
    return "\n".join(
        [
            "-- Rendered from isales_stats/core/keys.py by isales_stats/engine/scripts.py.",
            "local function strict(what, names)",
            "  return setmetatable(names, {__index = function(_, name)",
            "    error('the key layout defines no ' .. what .. ' ' .. tostring(name))",
            "  end})",
            "end",
            f"local COUNTER = strict('counter', {_lua_table(counters)})",
            f"local SUFFIX = strict('key suffix', {_lua_table(CAMPAIGN_KEY_SUFFIXES)})",
            "local LIFE = strict('lifecycle field', "
            + _lua_table({name: name for name in LIFE_FIELDS})
            + ")",
            f"local HOUR_FIELD = strict('hour counter', {_lua_table(HOUR_COUNTERS)})",
            "local TOTAL_FIELDS = {"
            + ", ".join(f"COUNTER.{name}" for name in TOTAL_COUNTERS)
            + "}",
            "local DAILY_FIELDS = {"
            + ", ".join(f"COUNTER.{name}" for name in DAILY_COUNTERS)
            + "}",
            "local PROGRESS_FIELDS = {"
            + ", ".join(_lua_string(name) for name in PROGRESS_FIELDS)
            + "}",
            "local CHANGE_FIELDS = {"
            + ", ".join(_lua_string(name) for name in CHANGE_FIELDS)
            + "}",
            # A row of zeros, for a scope or day with no row yet (a change's counters).
            "local ZERO_TOTALS = " + _lua_string(",".join("0" for _ in TOTAL_COUNTERS)),
            "local ZERO_DAILY = " + _lua_string(",".join("0" for _ in DAILY_COUNTERS)),
            PRELUDE_END,
            "",
        ]
    )


def script_source(name: str) -> str:
    """The script as stored in the package, without its prelude."""
    return files("isales_stats.engine").joinpath(name).read_text()


def load_script(name: str) -> LuaScript:
    """The script ``name`` (a file beside this module) behind its prelude.

    A script whose file opens with a shebang (``#!lua flags=...``, Redis 7's script flags)
    keeps it as its first line, where Redis reads it.
    """
    source = script_source(name)
    shebang = ""
    if source.startswith("#!"):
        first_line, _, source = source.partition("\n")
        shebang = first_line + "\n"
    return LuaScript(shebang + prelude() + source)
