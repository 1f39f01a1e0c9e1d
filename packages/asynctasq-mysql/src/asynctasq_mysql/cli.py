"""``asynctasq mysql migrate``: create or upgrade the tables, or print the SQL.

Registered in the ``asynctasq.cli`` entry-point group as ``mysql``; the asynctasq CLI mounts
this Typer app as a sub-command. It also runs alone: ``python -m asynctasq_mysql.cli``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from asynctasq_mysql.driver import DEFAULT_DSN, MySQLDriver
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


@app.command()
def migrate(
    dsn: Annotated[
        str,
        typer.Option(
            envvar="ASYNCTASQ_MYSQL_DSN",
            help="mysql://user:password@host:3306/database (password percent-encoded).",
            show_default=False,
        ),
    ] = DEFAULT_DSN,
    queue_table: Annotated[
        str, typer.Option(envvar="ASYNCTASQ_MYSQL_QUEUE_TABLE", help="Queue table name.")
    ] = "task_queue",
    dead_letter_table: Annotated[
        str,
        typer.Option(envvar="ASYNCTASQ_MYSQL_DEAD_LETTER_TABLE", help="Dead-letter table name."),
    ] = "dead_letter_queue",
    migrations_table: Annotated[
        str | None,
        typer.Option(
            envvar="ASYNCTASQ_MYSQL_MIGRATIONS_TABLE",
            help="Migrations table name [default: <queue-table>_migrations].",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the SQL and exit without connecting.")
    ] = False,
) -> None:
    """Create or upgrade the queue tables (idempotent; safe to run from several hosts)."""
    try:
        driver = MySQLDriver(
            dsn=dsn,
            queue_table=queue_table,
            dead_letter_table=dead_letter_table,
            migrations_table=migrations_table,
            min_pool_size=1,
            max_pool_size=1,
            auto_migrate=False,
        )
    except MySQLDriverError as exc:
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
