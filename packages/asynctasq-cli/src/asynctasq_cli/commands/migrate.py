"""``asynctasq migrate``: create or upgrade the configured driver's schema.

The one command for every driver with a schema: a driver that is a
`asynctasq.drivers.base.SchemaManager` (the SQL drivers, and any third-party driver that
implements the protocol) has its ``init_schema()`` run, or its ``migration_sql()`` printed
with ``--dry-run``. The driver is built from the same configuration as the worker (command
line, environment, ``.env``), so one set of settings serves both. Any other driver keeps no
schema and there is nothing to do.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

import typer

from asynctasq.drivers.base import Driver, SchemaManager
from asynctasq.drivers.registry import driver_class, driver_settings
from asynctasq.errors import AsyncTasQError
from asynctasq.runner import run
from asynctasq_cli import session
from asynctasq_cli.output import CliError, literal, one_line, reporting_errors, stdout
from asynctasq_cli.settings import (
    ConnectionOptions,
    LoadedConfig,
    load_config,
    takes_connection,
)


def _build(loaded: LoadedConfig) -> Driver:
    # Migrating is what this command does; the driver must not also do it at connect.
    extra: dict[str, Any] = {}
    if "auto_migrate" in driver_settings(driver_class(loaded.driver_name)):
        extra["auto_migrate"] = False
    return session.create(loaded, **extra)


class _SchemaDriver(Driver, SchemaManager, Protocol):
    """A driver with a schema."""


async def _migrate(driver: _SchemaDriver, loaded: LoadedConfig) -> list[int]:
    # No connect() first: with auto_migrate off, a driver may refuse to connect to the very
    # tables this command is about to create. init_schema() opens what it needs.
    try:
        return await driver.init_schema()
    except AsyncTasQError:
        raise
    except Exception as exc:
        raise CliError(
            f"cannot migrate {session.describe_driver(loaded)}: "
            f"{type(exc).__name__}: {one_line(exc)}"
        ) from exc
    finally:
        await driver.close()


def register(app: typer.Typer) -> None:
    """Add ``migrate`` to `app`."""

    @app.command(rich_help_panel="Manage")
    @takes_connection
    def migrate(
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print the SQL instead of running it.")
        ] = False,
        *,
        connection: ConnectionOptions,
    ) -> None:
        """Create or upgrade the configured driver's tables (idempotent)."""
        with reporting_errors():
            loaded = load_config(connection)
            instance = _build(loaded)
            described = session.describe_driver(loaded)
            if not isinstance(instance, SchemaManager):
                stdout().print(literal(f"{described} keeps no schema: nothing to migrate."))
                return
            if dry_run:
                typer.echo(instance.migration_sql(), nl=False)
                return
            applied = run(_migrate(instance, loaded))
            if applied:
                versions = ", ".join(str(v) for v in applied)
                stdout().print(literal(f"Applied migration(s) {versions} to {described}."))
            else:
                stdout().print(literal(f"{described} is up to date."))


__all__ = ["register"]
