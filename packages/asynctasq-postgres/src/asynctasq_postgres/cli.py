"""``asynctasq postgres ...``: sub-commands mounted by the AsyncTasQ CLI (entry point group
``asynctasq.cli``); also runnable alone with ``python -m asynctasq_postgres.cli``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import asyncpg
import typer

from asynctasq_postgres.driver import PostgresDriver
from asynctasq_postgres.dsn import redact_dsn
from asynctasq_postgres.naming import InvalidIdentifierError
from asynctasq_postgres.schema import LATEST_VERSION

app = typer.Typer(name="postgres", help="PostgreSQL driver tools.", no_args_is_help=True)

DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        envvar="ASYNCTASQ_POSTGRES_DSN",
        help="postgresql://user:password@host:port/db (default: libpq PG* variables).",
        show_default=False,
    ),
]
SchemaOption = Annotated[
    str, typer.Option("--schema", envvar="ASYNCTASQ_POSTGRES_SCHEMA", help="Schema name.")
]
QueueTableOption = Annotated[
    str,
    typer.Option(
        "--queue-table", envvar="ASYNCTASQ_POSTGRES_QUEUE_TABLE", help="Queue table name."
    ),
]
DeadLetterTableOption = Annotated[
    str,
    typer.Option(
        "--dead-letter-table",
        envvar="ASYNCTASQ_POSTGRES_DEAD_LETTER_TABLE",
        help="Dead-letter table name.",
    ),
]


@app.callback()
def _group() -> None:
    """PostgreSQL driver tools."""


@app.command()
def migrate(
    dsn: DsnOption = None,
    schema: SchemaOption = "public",
    queue_table: QueueTableOption = "task_queue",
    dead_letter_table: DeadLetterTableOption = "dead_letter_queue",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the SQL instead of running it.")
    ] = False,
) -> None:
    """Create or upgrade the queue tables (idempotent)."""
    try:
        driver = PostgresDriver(
            dsn,
            schema=schema,
            queue_table=queue_table,
            dead_letter_table=dead_letter_table,
            min_pool_size=1,
            max_pool_size=1,
        )
    except (InvalidIdentifierError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if dry_run:
        typer.echo(driver.migration_sql(), nl=False)
        return
    try:
        applied = asyncio.run(_migrate(driver))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        target = redact_dsn(dsn) or "the PG* default database"
        typer.echo(f"error: cannot migrate {target}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    where = f"{schema}.{queue_table} on {redact_dsn(dsn) or 'the PG* default database'}"
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
