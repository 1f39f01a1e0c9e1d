"""The root command: help, version, errors, and plugin sub-commands."""

from __future__ import annotations

from pathlib import Path

import typer
from cli_testing import Invoke

from asynctasq_cli import app as app_module
from asynctasq_cli import plugins


def test_help_lists_the_commands(cli: Invoke) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    installed_plugins = plugins.plugin_names()
    for command in (
        "worker",
        "queues",
        "dead-letters",
        "purge",
        "doctor",
        "migrate",
        *installed_plugins,
    ):
        assert command in result.stdout


def test_no_arguments_shows_help(cli: Invoke) -> None:
    result = cli()
    assert result.exit_code == 2
    assert "worker" in result.output


def test_version(cli: Invoke) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("asynctasq-cli 0.1.0 (asynctasq-core ")


def test_unknown_command_and_option_are_one_line(cli: Invoke) -> None:
    result = cli("wrker")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: No such command 'wrker'")
    result = cli("queues", "--jsn")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "--jsn" in line and "(see: asynctasq queues --help)" in line


def test_every_command_has_help(cli: Invoke) -> None:
    for command in (
        ["worker"],
        ["queues"],
        ["purge"],
        ["doctor"],
        ["migrate"],
        ["dead-letters"],
        ["dead-letters", "list"],
        ["dead-letters", "show"],
        ["dead-letters", "retry"],
        ["dead-letters", "purge"],
    ):
        result = cli(*command, "--help")
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.stdout


def test_unexpected_errors_are_one_line_unless_debug(cli: Invoke, monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    from asynctasq_cli.commands import queues

    async def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something\nbroke badly")

    monkeypatch.setattr(queues, "collect_stats", explode)
    result = cli("queues")
    assert result.exit_code == 1
    assert result.stderr == "error: RuntimeError: something\n"
    result = cli("--debug", "queues")
    assert isinstance(result.exception, RuntimeError)
    result = cli("queues", "--debug")  # after the command works as well
    assert isinstance(result.exception, RuntimeError)


def test_main_exits_with_the_code(monkeypatch: object, capsys: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    with pytest.raises(SystemExit) as exit_info:
        app_module.main(["worker", "--concurrency", "0"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        app_module.main(["--version"])
    assert exit_info.value.code == 0


# -- plugins -------------------------------------------------------------------------------
def test_plugin_commands_are_mounted_under_their_entry_point_name(
    cli: Invoke, fake_plugins: Path
) -> None:
    result = cli("fake", "hello", "--name", "you")
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello you\n"
    assert "fake" in cli("--help").stdout


def test_a_broken_plugin_does_not_break_the_cli(
    cli: Invoke, fake_plugins: Path, memory_args: list[str]
) -> None:
    assert cli("queues", *memory_args).exit_code == 0
    assert cli("--help").exit_code == 0
    result = cli("broken")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        "error: the 'broken' command from asynctasq-fake-cli 1.2.3 failed to load: "
        "ModuleNotFoundError"
    )
    result = cli("notapp", "anything", "--at-all")
    assert result.exit_code == 1
    assert "expected a typer.Typer" in result.stderr


def test_built_in_commands_win_a_name_clash(cli: Invoke, fake_plugins: Path) -> None:
    assert plugins.command_for("worker") is not None  # the plugin exists ...
    result = cli("worker", "--help")
    assert "--concurrency" in result.stdout  # ... but `worker` is ours


def test_loaded_plugins_are_cached(fake_plugins: Path) -> None:
    first = plugins.load("fake")
    assert plugins.load("fake") is first
    assert first.info.distribution == "asynctasq-fake-cli" and first.info.version == "1.2.3"
    assert isinstance(plugins.load_all(), list)
    assert plugins.load("broken").command is None
    assert typer  # the module the plugin apps are built with
