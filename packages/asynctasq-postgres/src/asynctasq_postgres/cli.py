"""``asynctasq postgres ...``: sub-commands mounted by the AsyncTasQ CLI (entry point group
``asynctasq.cli``); also runnable alone with ``python -m asynctasq_postgres.cli``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import asyncpg
import typer

from asynctasq.errors import ConfigError
from asynctasq_cli.settings import (
    DriverOptionOption,
    EnvFileOption,
    SetOption,
    migration_settings,
)
from asynctasq_postgres.driver import PostgresDriver
from asynctasq_postgres.dsn import redact_dsn
from asynctasq_postgres.naming import InvalidIdentifierError
from asynctasq_postgres.schema import LATEST_VERSION

app = typer.Typer(name="postgres", help="PostgreSQL driver tools.", no_args_is_help=True)

# No envvar= on these: the environment and .env are read by the configuration loader, with
# the same precedence as for `asynctasq worker` and `asynctasq migrate`. These options are
# the strongest layer, like --set postgres.KEY=VALUE.
DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        help="postgresql://user:password@host:port/db "
        "(default: postgres.dsn from the configuration, else the libpq PG* variables).",
        show_default=False,
    ),
]
SchemaOption = Annotated[
    str | None,
    typer.Option("--schema", help="Schema name. [default: postgres.schema, or public]"),
]
QueueTableOption = Annotated[
    str | None,
    typer.Option(
        "--queue-table", help="Queue table name. [default: postgres.queue_table, or task_queue]"
    ),
]
DeadLetterTableOption = Annotated[
    str | None,
    typer.Option(
        "--dead-letter-table",
        help="Dead-letter table name. [default: postgres.dead_letter_table, or dead_letter_queue]",
    ),
]


@app.callback()
def _group() -> None:
    """PostgreSQL driver tools."""


@app.command()
def migrate(
    dsn: DsnOption = None,
    schema: SchemaOption = None,
    queue_table: QueueTableOption = None,
    dead_letter_table: DeadLetterTableOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the SQL instead of running it.")
    ] = False,
    set_: SetOption = None,
    driver_option: DriverOptionOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Create or upgrade the queue tables (idempotent).

    The settings are read like every other command's: command line, then ASYNCTASQ_POSTGRES_*
    variables, then .env, then the defaults.
    """
    given = {
        "dsn": dsn,
        "schema": schema,
        "queue_table": queue_table,
        "dead_letter_table": dead_letter_table,
    }
    try:
        settings = migration_settings("postgres", given, set_, driver_option, env_file)
        driver = PostgresDriver(**{**settings, "min_pool_size": 1, "max_pool_size": 1})
    except (ConfigError, InvalidIdentifierError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if dry_run:
        typer.echo(driver.migration_sql(), nl=False)
        return
    target = redact_dsn(settings.get("dsn")) or "the PG* default database"
    try:
        applied = asyncio.run(_migrate(driver))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        typer.echo(f"error: cannot migrate {target}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    names = driver.table_names
    where = f"{names.schema}.{names.queue_table} on {target}"
    if applied:
        versions = ", ".join(str(v) for v in applied)
        typer.echo(f"Applied migration(s) {versions} to {where}; schema at v{LATEST_VERSION}.")
    else:
        typer.echo(f"{where} is up to date (v{LATEST_VERSION}).")


async def _migrate(driver: PostgresDriver) -> list[int]:
    try:
        return await driver.init_schema()
    finally:
        await driver.close()


if __name__ == "__main__":  # pragma: no cover
    app()
