"""The engine's Lua scripts, each loaded behind a prelude rendered from the key layout.

Counter names, key suffixes and lifecycle fields are spelled once, in
``isales_stats/core/keys.py``. A script names them as ``COUNTER.totalCount``, ``SUFFIX.records``,
``LIFE.closed`` and ``HOUR_FIELD.dailyCount`` (a daily counter's name in an hour's field), and a
rolling window's fields and buckets (``isales_stats/core/windows.py``) as ``WINDOW_FIELD.sums``,
``BUCKET_PREFIX.minute`` and ``WINDOWS``: the prelude defines these tables from Python, and
makes them strict, so that a name the layout does not define is an error in Redis instead of a
nil that writes a counter no reader knows.
``tests/test_lua_names.py`` checks the scripts against the layout without Redis: a counter
renamed in Python but not in a script fails it.

The counting script is long, so it is kept in parts, one concern each, in ``count_events/``;
``load_parts`` assembles them in the order ``COUNT_EVENTS_PARTS`` gives, behind a prelude that
also names its contract (``engine/contract.py``): ``EVENT.data_id`` is where an event holds its
dataId, ``ARG.today`` the value of that argument, ``VERDICT.DUPLICATE`` the letter it answers.
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
from isales_stats.core.notification_kinds import (
    ABANDON_STATUS_FIELD,
    CAMPAIGN_FINISHED,
    CAMPAIGN_RELEASED,
    CAMPAIGN_RESUMED,
    CAMPAIGN_STALLED,
    DATA_FIELDS,
    DAY_CLOSED,
    KIND_OF_STATUS,
    NOTIFIED_FIELDS,
    NOTIFIED_WINDOWS,
    OUTBOX_FIELDS,
)
from isales_stats.core.windows import (
    BUCKET_FIELDS,
    BUCKET_PREFIX,
    LAST_CALL_FIELD,
    LIFE_FIELD,
    SUMS_FIELD,
    WINDOWS,
)
from isales_stats.engine.contract import ANNOUNCE, VERDICTS, CountingArguments, PackedEvent
from isales_stats.engine.redis_connection import LuaScript

PRELUDE_END = "-- end of the prelude"
# The counting script's parts (count_events/), in the order they are assembled: each may use
# what the parts before it define. Its header says what it reads and writes.
COUNT_EVENTS_PARTS = (
    "buffers.lua",  # write buffers, scopes, and writing once at the end
    "lifecycle.lua",  # a released or deleted campaign refused; its active day and end
    "idempotence.lua",  # record states, callIds and batch numbers
    "history.lua",  # per-hour counters and failCodes of each day
    "rows.lua",  # counter hashes and the packed rows the API reads
    "totals_and_days.lua",  # the totals and daily counters, and the day's record flags
    "changes.lua",  # the change stream and channel of push
    "progress.lua",  # calls, connects and finished records per minute
    "windows.lua",  # each scope's rolling windows: buckets per minute, hour and day, and sums
    "rules.lua",  # what each kind of event counts
    "notifications.lua",  # crossings: finished, resumed, abandon status per window; outbox
    "main.lua",  # the call: every event, then every write, once
)


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
            "    error('no ' .. what .. ' is named ' .. tostring(name))",
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
            # Rolling windows (isales_stats/core/windows.py): a window hash's fields other than
            # its buckets, the letter before each kind of bucket's number, and the windows in
            # the order of their sums, each with the kind of bucket it sums and how many.
            "local WINDOW_FIELD = strict('window field', "
            + _lua_table({"life": LIFE_FIELD, "last": LAST_CALL_FIELD, "sums": SUMS_FIELD})
            + ")",
            f"local BUCKET_PREFIX = strict('bucket kind', {_lua_table(BUCKET_PREFIX)})",
            "local WINDOWS = {"
            + ", ".join(
                f"{{name = {_lua_string(name)}, kind = {_lua_string(kind)}, size = {size}}}"
                for name, (kind, size) in WINDOWS.items()
            )
            + "}",
            "local ZERO_BUCKET = " + _lua_string(",".join("0" for _ in BUCKET_FIELDS)),
            # Where a bucket's counts stand in it ("calls,connects,abandoned,finished").
            "local BUCKET_COUNT = strict('bucket count', "
            + _lua_fields({name: str(index) for index, name in enumerate(BUCKET_FIELDS, 1)})
            + ")",
            # A row of zeros, for a scope or day with no row yet (a change's counters).
            "local ZERO_TOTALS = " + _lua_string(",".join("0" for _ in TOTAL_COUNTERS)),
            "local ZERO_DAILY = " + _lua_string(",".join("0" for _ in DAILY_COUNTERS)),
            *notification_prelude(),
            PRELUDE_END,
            "",
        ]
    )


def notification_prelude() -> list[str]:
    """The names of notifications (isales_stats/core/notification_kinds.py): the kinds, an
    outbox entry's fields, the notified hash's fields, and the windows whose abandon status is
    notified with the part of a scope's counts each is."""
    kinds = {
        "finished": CAMPAIGN_FINISHED,
        "stalled": CAMPAIGN_STALLED,
        "resumed": CAMPAIGN_RESUMED,
        "day_closed": DAY_CLOSED,
        "released": CAMPAIGN_RELEASED,
    }
    return [
        f"local KIND = strict('notification kind', {_lua_table(kinds)})",
        "local STATUS_KIND = strict('abandon status', "
        + _lua_table({str(status): kind for status, kind in KIND_OF_STATUS.items()})
        + ")",
        "local STATUS = strict('abandon status', "
        + _lua_table({str(name): str(name) for name in KIND_OF_STATUS})
        + ")",
        "local OUTBOX_FIELD = strict('outbox field', "
        + _lua_table({name: name for name in OUTBOX_FIELDS})
        + ")",
        "local DATA = strict('data field', "
        + _lua_table({name: name for name in DATA_FIELDS})
        + ")",
        f"local NOTIFIED = strict('notified field', {_lua_table(dict(NOTIFIED_FIELDS))})",
        "local NOTIFIED_WINDOWS = {"
        + ", ".join(
            f"{{name = {_lua_string(name)}, sum = {_sum_place(part)}, "
            f"field = {_lua_string(ABANDON_STATUS_FIELD + name)}}}"
            for name, part in NOTIFIED_WINDOWS.items()
        )
        + "}",
    ]


def _sum_place(part: str) -> int:
    """A window's place in a window hash's sums (WINDOWS order), 0 for today's day bucket."""
    return list(WINDOWS).index(part) + 1 if part in WINDOWS else 0


def contract_prelude() -> str:
    """The Lua lines that name the counting script's contract (engine/contract.py)."""
    positions = {name: str(index) for index, name in enumerate(PackedEvent._fields, start=1)}
    arguments = {
        name: f"ARGV[{index}]" for index, name in enumerate(CountingArguments._fields, start=1)
    }
    return "\n".join(
        [
            "-- The counting contract, rendered from isales_stats/engine/contract.py.",
            f"local EVENT = strict('event field', {_lua_fields(positions)})",
            f"local ARG = strict('argument', {_lua_fields(arguments)})",
            f"local VERDICT = strict('verdict', {_lua_table(VERDICTS)})",
            f"local ANNOUNCE = {_lua_string(ANNOUNCE)}",
            "",
        ]
    )


def _lua_fields(entries: dict[str, str]) -> str:
    """A Lua table of Lua expressions (positions, ARGV[i]), not strings."""
    return "{" + ", ".join(f"{name} = {value}" for name, value in entries.items()) + "}"


def script_source(name: str) -> str:
    """The script as stored in the package, without its prelude."""
    return files("isales_stats.engine").joinpath(name).read_text()


def load_script(name: str) -> LuaScript:
    """The script ``name`` (a file beside this module, or in a feature's folder beside it:
    ``notifications/sweep.lua``) behind its prelude.

    A script whose file opens with a shebang (``#!lua flags=...``, Redis 7's script flags)
    keeps it as its first line, where Redis reads it.
    """
    source = script_source(name)
    shebang = ""
    if source.startswith("#!"):
        first_line, _, source = source.partition("\n")
        shebang = first_line + "\n"
    return LuaScript(shebang + prelude() + source)


def part_source(directory: str, part: str) -> str:
    """One part of a script kept in parts (``count_events/rules.lua``)."""
    return script_source(f"{directory}/{part}")


def assemble_parts(directory: str, parts: tuple[str, ...]) -> str:
    """The parts of a script, in order, each behind a line naming it (Redis' error messages give
    a line of the whole: the nearest such line above it names the part)."""
    return "".join(f"-- part {directory}/{part}\n{part_source(directory, part)}" for part in parts)


def load_count_events() -> LuaScript:
    """The counting script, assembled from its parts behind the prelude and its contract.

    The shebang (no flags) makes Redis refuse the whole script up front when it is over its
    maxmemory (noeviction: isales_stats/commands/stack/redis.py). Without one, Redis refuses a
    script only at its first write that needs memory, and lets it go on once any write got past
    (a DEL or HDEL needs none): refused whole, counting waits and retries until memory is freed
    or added, and nothing is half counted.
    """
    return LuaScript(
        "#!lua\n"
        + prelude()
        + contract_prelude()
        + assemble_parts("count_events", COUNT_EVENTS_PARTS)
    )
