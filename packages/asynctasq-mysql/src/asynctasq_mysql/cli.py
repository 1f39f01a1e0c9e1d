"""``asynctasq mysql migrate``: create or upgrade the tables, or print the SQL.

Registered in the ``asynctasq.cli`` entry-point group as ``mysql``; the asynctasq CLI mounts
this Typer app as a sub-command. It also runs alone: ``python -m asynctasq_mysql.cli``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from asynctasq.errors import ConfigError
from asynctasq_cli.settings import (
    DriverOptionOption,
    EnvFileOption,
    SetOption,
    migration_settings,
)
from asynctasq_mysql.driver import MySQLDriver
from asynctasq_mysql.errors import MySQLDriverError

app = typer.Typer(
    name="mysql",
    help="MySQL / MariaDB driver: schema management.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _group() -> None:
    """MySQL / MariaDB driver commands."""


async def _apply(driver: MySQLDriver) -> list[int]:
    try:
        return await driver.init_schema()
    finally:
        await driver.close()


# No envvar= on the options: the environment and .env are read by the configuration loader,
# with the same precedence as for `asynctasq worker` and `asynctasq migrate`. The options
# are the strongest layer, like --set mysql.KEY=VALUE.
@app.command()
def migrate(
    dsn: Annotated[
        str | None,
        typer.Option(
            help="mysql://user:password@host:3306/database (password percent-encoded). "
            "[default: mysql.dsn from the configuration, or mysql://root@127.0.0.1:3306/test]",
            show_default=False,
        ),
    ] = None,
    queue_table: Annotated[
        str | None,
        typer.Option(help="Queue table name. [default: mysql.queue_table, or task_queue]"),
    ] = None,
    dead_letter_table: Annotated[
        str | None,
        typer.Option(
            help="Dead-letter table name. [default: mysql.dead_letter_table, or dead_letter_queue]"
        ),
    ] = None,
    migrations_table: Annotated[
        str | None,
        typer.Option(
            help="Migrations table name. "
            "[default: mysql.migrations_table, or <queue-table>_migrations]",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the SQL and exit without connecting.")
    ] = False,
    set_: SetOption = None,
    driver_option: DriverOptionOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Create or upgrade the queue tables (idempotent; safe to run from several hosts).

    The settings are read like every other command's: command line, then ASYNCTASQ_MYSQL_*
    variables, then .env, then the defaults.
    """
    given = {
        "dsn": dsn,
        "queue_table": queue_table,
        "dead_letter_table": dead_letter_table,
        "migrations_table": migrations_table,
    }
    try:
        settings = migration_settings("mysql", given, set_, driver_option, env_file)
        driver = MySQLDriver(**{**settings, "min_pool_size": 1, "max_pool_size": 1})
    except (ConfigError, MySQLDriverError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if dry_run:
        typer.echo(driver.migration_sql(), nl=False)
        return
    try:
        applied = asyncio.run(_apply(driver))
    except Exception as exc:  # the server's own errors carry no password; the DSN is redacted
        typer.echo(f"error: migrating {driver!r} failed: {exc}", err=True)
        raise typer.Exit(1) from None
    if applied:
        typer.echo(f"applied migration(s) {', '.join(map(str, applied))} to {driver!r}")
    else:
        typer.echo(f"schema of {driver!r} is up to date")


if __name__ == "__main__":  # pragma: no cover
    app()
