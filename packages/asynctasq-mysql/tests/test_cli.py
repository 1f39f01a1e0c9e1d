"""Entry points and the ``migrate`` command."""

from __future__ import annotations

from importlib.metadata import entry_points

import typer
from typer.testing import CliRunner

from asynctasq_mysql import MySQLDriver
from asynctasq_mysql.cli import app

runner = CliRunner()


def test_entry_points_name_the_driver_and_the_cli() -> None:
    [driver] = entry_points(group="asynctasq.drivers", name="mysql")
    assert driver.value == "asynctasq_mysql:MySQLDriver"
    assert driver.load() is MySQLDriver
    [cli] = entry_points(group="asynctasq.cli", name="mysql")
    assert cli.value == "asynctasq_mysql.cli:app"
    assert isinstance(cli.load(), typer.Typer)


def test_dry_run_prints_sql_without_connecting() -> None:
    result = runner.invoke(
        app,
        [
            "migrate",
            "--dry-run",
            "--dsn",
            "mysql://u:pw@unreachable.invalid/db",
            "--queue-table",
            "q1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE IF NOT EXISTS `q1` (" in result.output
    assert "CREATE TABLE IF NOT EXISTS `dead_letter_queue` (" in result.output


def test_invalid_settings_exit_2_without_echoing_the_password() -> None:
    result = runner.invoke(
        app, ["migrate", "--dsn", "mysql://u:hunter2@h/db", "--queue-table", "bad name"]
    )
    assert result.exit_code == 2
    assert "invalid queue_table" in result.output
    assert "hunter2" not in result.output


def test_migrate_applies_once_and_reads_the_dsn_from_the_environment(
    mysql_dsn: str, table_names: dict[str, str]
) -> None:
    args = [
        "migrate",
        "--queue-table",
        table_names["queue"],
        "--dead-letter-table",
        table_names["dead_letter"],
    ]
    env = {"ASYNCTASQ_MYSQL_DSN": mysql_dsn}
    first = runner.invoke(app, args, env=env)
    assert first.exit_code == 0, first.output
    assert "applied migration(s) 1" in first.output
    second = runner.invoke(app, args, env=env)
    assert second.exit_code == 0, second.output
    assert "up to date" in second.output


def test_unreachable_server_exits_1_with_a_redacted_dsn() -> None:
    result = runner.invoke(
        app, ["migrate", "--dsn", "mysql://u:hunter2@127.0.0.1:1/db?connect_timeout=1"]
    )
    assert result.exit_code == 1
    assert "mysql://u:***@127.0.0.1:1/db" in result.output
    assert "hunter2" not in result.output
