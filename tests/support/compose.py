"""docker-compose.yml read as YAML: its services, their environments, commands and dependencies.

Shared by tests/test_compose.py and tests/test_k8s.py, which checks that deploy/k8s runs what
compose runs.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"

_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")


def load_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "docker-compose.yml is not a mapping"
    return cast(dict[str, Any], document)


def services() -> dict[str, dict[str, Any]]:
    found = load_compose().get("services")
    assert isinstance(found, dict), "docker-compose.yml has no services"
    return cast(dict[str, dict[str, Any]], found)


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as strings, whether written as a mapping or as a list."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(str(item).partition("=")[::2] for item in raw)
    assert isinstance(raw, dict)
    return {str(name): "" if value is None else str(value) for name, value in raw.items()}


def with_defaults(text: str) -> str:
    """``${VAR:-default}`` replaced by its default: the value when nothing overrides it."""
    return _DEFAULTED.sub(lambda match: match.group(2), text)


def command_of(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def depends_on(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    raw = service.get("depends_on") or {}
    assert isinstance(raw, dict), "depends_on as a list has no conditions; use the long form"
    return cast(dict[str, dict[str, Any]], raw)
