"""What a process says about its ``ISALES_*`` variables before it trusts them.

pydantic-settings ignores a variable it does not know (``extra="ignore"``, so that one
environment can serve every process), which makes a misspelled one silently fall back to the
default: ``misspelled_settings`` names each such variable and the setting it was probably meant
to be. A value that does not parse is a ``ValidationError`` whose text is a multi-line
traceback-like report in pydantic's terms: ``invalid_settings`` turns it into one line per
variable, naming it, its value's problem and an example of a good one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path

from dotenv import dotenv_values
from pydantic import SecretStr, ValidationError

from isales_stats.core.settings import Settings

PREFIX = "ISALES_"

# Variables with the prefix that are not settings: the tests' and benchmarks' own knobs
# (docs/reliability.md), passed down to every process a test starts.
NOT_SETTINGS = frozenset(
    {"ISALES_FAULT_SEED", "ISALES_SOAK_SECONDS", "ISALES_SOAK_RATE", "ISALES_BENCH_BASELINE_BODIES"}
)

# Examples for settings whose default is empty, so cannot serve as one.
_EXAMPLES = {
    "vdn_time_zones": "7=+05:30,12=Asia/Tokyo",
    "trusted_proxies": "10.0.0.0/8,192.0.2.10",
    "api_public_hosts": "stats.example.com,stats.example.com:8443",
}
_LONGEST_VALUE_SHOWN = 60


def variable_of(field: str) -> str:
    return f"{PREFIX}{field.upper()}"


def known_variables() -> frozenset[str]:
    return frozenset(variable_of(field) for field in Settings.model_fields)


def dotenv_names(path: Path = Path(".env")) -> list[str]:
    """The names a ``.env`` file in the working directory sets (pydantic-settings reads it)."""
    return list(dotenv_values(path)) if path.is_file() else []


def misspelled_settings(names: Iterable[str]) -> list[str]:
    """A warning for each ``ISALES_*`` name among ``names`` that is no setting, naming the
    nearest one (names are compared without the prefix, which every candidate shares)."""
    known = known_variables()
    suffixes = {name.removeprefix(PREFIX): name for name in known}
    warnings = []
    for name in sorted({name.upper() for name in names}):
        if not name.startswith(PREFIX) or name in known or name in NOT_SETTINGS:
            continue
        nearest = difflib.get_close_matches(name.removeprefix(PREFIX), suffixes, n=1)
        hint = (
            f"did you mean {suffixes[nearest[0]]}?"
            if nearest
            else "see docs/operations.md, 'Configuration'"
        )
        warnings.append(f"{name} is not a setting and is ignored: {hint}")
    return warnings


def invalid_settings(error: ValidationError) -> list[str]:
    """One line per problem of ``error`` (raised by ``Settings()``): the variable, its value
    (unless a secret), what is wrong with it and an example of a value that works."""
    lines = []
    for problem in error.errors():
        message = problem["msg"].removeprefix("Value error, ")
        if not problem["loc"]:  # a rule across settings: its message names the variables
            lines.append(f"invalid settings: {message}")
            continue
        field = str(problem["loc"][0])
        variable = variable_of(field)
        lines.append(
            f"{variable}{_shown_value(field, problem['input'])}: {message}{_example(field)}"
        )
    return lines


def _shown_value(field: str, value: object) -> str:
    info = Settings.model_fields.get(field)
    if info is not None and info.annotation is SecretStr:
        return ""
    text = str(value)
    if len(text) > _LONGEST_VALUE_SHOWN:
        text = text[:_LONGEST_VALUE_SHOWN] + "..."
    return f"={text!r}"


def _example(field: str) -> str:
    example = _EXAMPLES.get(field)
    info = Settings.model_fields.get(field)
    if example is None and info is not None and info.default_factory is None:
        default = info.default
        if isinstance(default, bool):
            example = str(default).lower()
        elif default not in (None, "") and not isinstance(default, SecretStr | Path):
            example = str(default)
    return f" (for example {variable_of(field)}={example})" if example else ""


def environment_names(environment: Mapping[str, str]) -> list[str]:
    """The names of ``environment`` and of the ``.env`` file: where Settings are read from."""
    return [*environment, *dotenv_names()]
