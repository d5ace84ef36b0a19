"""The command line's surface, without services: every command says what it does, and runs.

``isales-stats --help`` must list every command, and every command and action must carry a
one-line help and a description (``isales-stats COMMAND --help``); a command module left out
of ``COMMANDS`` would be a command nobody can run. The last tests run ``query`` as far as it
goes without an API (``--curl``, refused options), through ``main``, the entry point.
"""

from __future__ import annotations

import argparse
import pkgutil
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from isales_stats.commands import cli
from isales_stats.core.interface import (
    ABANDON_RATE_PATH,
    HISTORY_PATH,
    PACING_PATH,
    PROGRESS_PATH,
)
from isales_stats.core.settings import Settings


def commands_of(
    parser: argparse.ArgumentParser, path: str = "isales-stats"
) -> Iterator[tuple[str, str | None, argparse.ArgumentParser]]:
    """Every command and action below ``parser``: its full name, its help and its parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                yield f"{path} {name}", helps.get(name), subparser
                yield from commands_of(subparser, f"{path} {name}")


ALL_COMMANDS = list(commands_of(cli.build_parser()))


def test_the_walk_finds_every_command_and_action() -> None:
    names = {name for name, _help, _parser in ALL_COMMANDS}
    assert {"isales-stats stack", "isales-stats query", "isales-stats campaigns delete"} <= names
    assert len(names) == len(ALL_COMMANDS) >= 12


@pytest.mark.parametrize(
    ("name", "summary", "parser"), ALL_COMMANDS, ids=[name for name, *_ in ALL_COMMANDS]
)
def test_every_command_has_a_help_and_a_description(
    name: str, summary: str | None, parser: argparse.ArgumentParser
) -> None:
    assert (summary or "").strip(), f"{name}: no help (its line in its parent's --help)"
    assert (parser.description or "").strip(), f"{name}: no description"
    assert str(parser.description).strip() in parser.format_help()
    is_group = any(isinstance(action, argparse._SubParsersAction) for action in parser._actions)
    assert is_group or callable(parser.get_default("run")), f"{name}: nothing runs it"


def test_the_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    # Whitespace aside: argparse wraps a long help onto the lines below its command.
    listing = " ".join(capsys.readouterr().out.split())
    commands = [(name, summary) for name, summary, _parser in ALL_COMMANDS if name.count(" ") == 1]
    assert len(commands) == len(cli.COMMANDS)
    for name, summary in commands:  # the actions are listed by their group's --help
        command = name.removeprefix("isales-stats ")
        assert " ".join(f"{command} {summary}".split()) in listing, command


def test_every_command_module_is_registered() -> None:
    """A module of the package with ``register`` but not in ``COMMANDS`` never shows."""
    modules = {
        name
        for _finder, name, _is_package in pkgutil.iter_modules(cli.__path__, f"{cli.__name__}.")
    }
    registering = {
        name for name in modules if hasattr(__import__(name, fromlist=["_"]), "register")
    }
    assert registering == {module.__name__ for module in cli.COMMANDS}


@pytest.fixture
def signing_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = Settings(
        client_access_key="cli-test-ak",
        client_secret_key=SecretStr("cli-test-secret-key-0123456789"),
    )
    monkeypatch.setattr(cli, "read_settings", lambda: settings)
    return settings


@pytest.mark.usefixtures("signing_settings")
def test_query_curl_prints_the_signed_request_of_the_chosen_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    arguments = ["query", "--vdn", "7", "--campaign", "C1", "--history", "--hourly"]
    status = cli.main([*arguments, "--url", "http://api.invalid:8000", "--curl"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("curl -s ")
    assert "Authorization: " in out
    assert "cli-test-ak" in out
    assert f"http://api.invalid:8000{HISTORY_PATH.format(vdn_id=7)}?" in out
    assert "campaignId=C1" in out
    assert "interval=hour" in out


@pytest.mark.usefixtures("signing_settings")
def test_query_progress_asks_for_the_minutes_given(capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["query", "--vdn", "7", "--campaign", "C1", "--progress", "--minutes", "15"]
    assert cli.main([*arguments, "--url", "http://api.invalid:8000", "--curl"]) == 0
    out = capsys.readouterr().out
    assert f"http://api.invalid:8000{PROGRESS_PATH.format(vdn_id=7)}?" in out
    assert "campaignId=C1" in out
    assert "minutes=15" in out


@pytest.mark.usefixtures("signing_settings")
def test_query_abandon_rate_and_pacing_ask_for_their_scope(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "http://api.invalid:8000"
    abandon = ["query", "--vdn", "7", "--abandon-rate", "--basis", "all", "--url", url, "--curl"]
    assert cli.main(abandon) == 0
    out = capsys.readouterr().out
    assert f"{url}{ABANDON_RATE_PATH.format(vdn_id=7)}?basis=all'" in out
    pacing = ["query", "--vdn", "7", "--campaign", "C1", "--batch", "B1", "--pacing"]
    assert cli.main([*pacing, "--url", url, "--curl"]) == 0
    out = capsys.readouterr().out
    assert f"{url}{PACING_PATH.format(vdn_id=7)}?campaignId=C1&batchId=B1'" in out


@pytest.mark.usefixtures("signing_settings")
@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--hourly"], "--hourly goes with --history"),
        (["--campaign", "C1", "--fails", "--batch", "B1"], "--batch has no meaning there"),
        (["--from", "2025-01-01"], "--from and --to go with --fails or --history"),
        (["--minutes", "5"], "--minutes goes with --progress"),
        (["--campaign", "C1", "--progress", "--batch", "B1"], "--batch has no meaning there"),
        (["--pacing", "--basis", "all"], "--basis goes with --abandon-rate"),
    ],
)
def test_query_refuses_options_the_read_would_drop(
    options: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["query", "--vdn", "1", "--curl", *options]) == 2
    said_on_stderr = capsys.readouterr().err
    assert said_on_stderr.startswith("isales-stats query: ")
    assert said in said_on_stderr


def test_a_client_command_refuses_one_key_without_the_other(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(client_access_key="", client_secret_key=SecretStr(""))
    monkeypatch.setattr(cli, "read_settings", lambda: settings)
    for command in ("query", "watch"):
        assert cli.main([command, "--vdn", "1", "--access-key", "only-ak"]) == 2
        assert f"isales-stats {command}: give both" in capsys.readouterr().err


def test_a_client_command_without_keys_says_it_sends_unsigned(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from isales_stats.commands import watching

    settings = Settings(client_access_key="", client_secret_key=SecretStr(""))
    monkeypatch.setattr(cli, "read_settings", lambda: settings)
    # watch would follow the API until Ctrl-C: here it returns at once.
    monkeypatch.setattr(watching, "follow", lambda *_args, **_options: 0)
    for command in (["query", "--curl"], ["watch"]):
        assert cli.main([*command, "--vdn", "1", "--url", "http://api.invalid:8000"]) == 0
        said = capsys.readouterr().err.splitlines()
        assert said == [
            f"isales-stats {command[0]}: sent unsigned: no ISALES_CLIENT_ACCESS_KEY/"
            "ISALES_CLIENT_SECRET_KEY (an API with auth on answers 401)"
        ]


@pytest.mark.usefixtures("signing_settings")
def test_a_signed_client_command_says_nothing_of_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["query", "--vdn", "1", "--url", "http://api.invalid:8000", "--curl"]) == 0
    assert capsys.readouterr().err == ""
