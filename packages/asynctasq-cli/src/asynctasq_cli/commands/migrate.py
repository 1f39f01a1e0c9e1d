"""``asynctasq migrate``: create or upgrade the configured driver's schema.

A driver with a schema provides ``async init_schema() -> list[int]`` (the versions applied)
and ``migration_sql() -> str`` (for ``--dry-run``); postgres and mysql do. The driver is
built from the same configuration as the worker (command line, environment, ``.env``), so
one set of settings serves both. A driver without either method keeps no schema; when its
package adds a ``migrate`` sub-command instead, that command is run.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from asynctasq.drivers.base import Driver
from asynctasq.drivers.registry import driver_class, driver_settings
from asynctasq.runner import run
from asynctasq_cli import plugins, session
from asynctasq_cli.output import literal, reporting_errors, stdout
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


async def _migrate(driver: Any, loaded: LoadedConfig) -> list[int]:
    try:
        await session.connect(driver, loaded, session.DEFAULT_CONNECT_TIMEOUT)
        applied: list[int] = await driver.init_schema()
        return applied
    finally:
        await driver.close()


def _plugin_migrate(name: str, dry_run: bool) -> bool:
    """Run ``asynctasq <name> migrate`` from the driver's package, if it has one."""
    command = plugins.command_for(name)
    if not isinstance(command, TyperGroup) or "migrate" not in command.commands:
        return False
    args = ["migrate", *(["--dry-run"] if dry_run else [])]
    command.main(args=args, prog_name=f"asynctasq {name}", standalone_mode=False)
    return True


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
            has_schema = callable(getattr(instance, "init_schema", None))
            if not has_schema:
                if not _plugin_migrate(loaded.driver_name, dry_run):
                    stdout().print(literal(f"{described} keeps no schema: nothing to migrate."))
                return
            if dry_run:
                sql = getattr(instance, "migration_sql", None)
                if not callable(sql):
                    stdout().print(literal(f"{described} cannot show its migration SQL."))
                    return
                typer.echo(sql(), nl=False)
                return
            applied = run(_migrate(instance, loaded))
            if applied:
                versions = ", ".join(str(v) for v in applied)
                stdout().print(literal(f"Applied migration(s) {versions} to {described}."))
            else:
                stdout().print(literal(f"{described} is up to date."))


__all__ = ["register"]
