"""What ``isales-stats demo`` prints to paste runs as printed.

Each indented line of ``what_to_try`` is a command: the ones of ours parse with the command
line's own parser, and the query line, pasted into a shell, runs (``--curl`` added, so that
it needs no API) signed with the demo key it names. No services: the demo itself stops the
stack it started, so it is not run here.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from isales_stats.client import StatisticsClient
from isales_stats.commands import cli
from isales_stats.commands.demo import (
    DEMO_ACCESS_KEY,
    DEMO_SECRET_KEY,
    DEMO_VDN,
    printed_program,
    what_to_try,
)
from isales_stats.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def printed_commands(settings: Settings) -> list[str]:
    base_url = f"http://{settings.api_host}:{settings.api_port}"
    with StatisticsClient(base_url, DEMO_ACCESS_KEY, DEMO_SECRET_KEY) as client:
        lines = what_to_try(settings, settings, client, "1001")
    return [line.strip() for line in lines if line.startswith("    ")]


def ours(command: str) -> tuple[dict[str, str], list[str]] | None:
    """The variables and the arguments of a command of ours (None: another program's)."""
    words = shlex.split(command)
    environment = {}
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        environment[name] = value
    program = shlex.split(printed_program())
    if words[: len(program)] != program:
        return None
    return environment, words[len(program) :]


@pytest.mark.parametrize("api_port", [8000, 8100])
def test_each_printed_command_parses_with_the_command_line(
    api_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    settings = Settings(api_port=api_port)
    commands = printed_commands(settings)
    parsed: dict[str, tuple[dict[str, str], argparse.Namespace]] = {}
    for command in commands:
        if command.startswith("curl "):
            assert shlex.split(command)[-1].startswith(f"http://127.0.0.1:{api_port}/")
            continue
        spelled = ours(command)
        assert spelled is not None, f"not ours: {command}"
        environment, words = spelled
        parsed[words[0]] = (environment, cli.build_parser().parse_args(words))
    assert sorted(parsed) == ["query", "simulate", "watch"]
    for name in ("query", "watch"):
        environment, arguments = parsed[name]
        assert environment == {
            "ISALES_CLIENT_ACCESS_KEY": DEMO_ACCESS_KEY,
            "ISALES_CLIENT_SECRET_KEY": DEMO_SECRET_KEY,
        }
        assert arguments.vdn == DEMO_VDN
        # The API the demo started, whether or not the shell's settings name its port.
        assert arguments.url in (None, f"http://127.0.0.1:{api_port}")
        assert (arguments.url is None) == (api_port == 8000)
    assert parsed["query"][1].campaign == "1001"


def test_the_printed_query_runs_as_pasted_into_a_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    query = next(line for line in printed_commands(Settings()) if " query " in line)
    # A fresh shell: none of the demo's keys in its environment, the checkout's directory.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ISALES_CLIENT_")}
    pasted = subprocess.run(
        ["bash", "-c", f"{query} --curl"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert pasted.returncode == 0, pasted.stderr
    assert pasted.stderr == ""  # signed: no "sent unsigned" line
    assert pasted.stdout.startswith("curl -s ")
    assert f"auth-v2/{DEMO_ACCESS_KEY}/" in pasted.stdout
    assert "campaignId=1001" in pasted.stdout
