"""``asynctasq schedules``: the schedules the task modules declare, their next runs, and the
last tick claimed on the broker.

Schedules live in code: the command imports the task modules the way ``asynctasq worker``
does (``--import``, ``ASYNCTASQ_WORKER_IMPORTS``, the allowed roots) and lists what they
declare. State is read only for those: a schedule deleted from the code is not listed, and
its leftover state on the broker is never read (it expires on its own).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from asynctasq.drivers.base import ClaimStore
from asynctasq.runner import run
from asynctasq.schedules.claims import read_last
from asynctasq.schedules.registry import Schedule, schedules
from asynctasq_cli import session
from asynctasq_cli.code_options import allowed_roots_option, imports_option
from asynctasq_cli.commands.worker import import_modules, resolve_roots
from asynctasq_cli.output import literal, print_json, reporting_errors, stdout, visible
from asynctasq_cli.settings import (
    ConnectionOptions,
    LoadedConfig,
    announce_held,
    load_config,
    reapply_after_imports,
    takes_connection,
)

NO_CLAIMS = "n/a"
"""Shown as the last tick when the driver keeps no claims."""


@dataclass(frozen=True, slots=True)
class Row:
    """One schedule as listed."""

    schedule: Schedule
    next_runs: list[datetime]
    last: datetime | None
    last_known: bool  # False: the driver keeps no claims

    def as_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        s = self.schedule
        return {
            "name": s.name,
            "task": s.task_name,
            "when": s.when.describe(),
            "catch_up": s.catch_up,
            "next_runs": [moment.isoformat() for moment in self.next_runs],
            "last_tick": None if self.last is None else self.last.isoformat(),
        }


def _moment(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def schedules_table(rows: list[Row], title: str) -> Table:
    """Schedules: name and task, when, the next runs, the last tick claimed."""
    table = Table(title=literal(title), title_justify="left")
    table.add_column("schedule", overflow="fold", min_width=12)
    table.add_column("when", overflow="fold", min_width=10)
    table.add_column("next runs", no_wrap=True)
    table.add_column("last tick claimed", no_wrap=True)
    for row in rows:
        s = row.schedule
        name = Text(visible(s.name), style="bold")
        if s.task_name != s.name:
            name.append(f"\n{visible(s.task_name)}", style="dim")
        when = Text(visible(s.when.describe()))
        if s.catch_up:
            when.append("\ncatch_up", style="dim")
        last = NO_CLAIMS if not row.last_known else "-" if row.last is None else _moment(row.last)
        table.add_row(name, when, "\n".join(map(_moment, row.next_runs)), last)
    return table


async def _rows(loaded: LoadedConfig, found: list[Schedule], count: int) -> list[Row]:
    async with session.open_driver(loaded) as driver:
        claims = driver if isinstance(driver, ClaimStore) else None
        rows = []
        for s in found:
            tick = None if claims is None else await read_last(claims, s.name)
            last = None if tick is None else datetime.fromtimestamp(tick, s.when.zone)
            rows.append(Row(s, s.next_runs(count), last, claims is not None))
        return rows


def list_schedules(
    connection: ConnectionOptions,
    imports: tuple[str, ...] | None,
    allowed_roots: tuple[str, ...] | None,
) -> tuple[LoadedConfig, list[Schedule]]:
    """Load the configuration, import the task modules, and return what they declare."""
    given = {"imports": imports, "allowed_roots": allowed_roots}
    worker = {k: v for k, v in given.items() if v is not None}
    # Warnings wait for the task modules: one may choose the driver in code.
    loaded = load_config(connection, {"worker": worker} if worker else None, announce=False)
    settings = loaded.config.worker
    roots = resolve_roots(settings.allowed_roots)
    added = import_modules(settings.imports, roots)
    try:
        effective = reapply_after_imports(loaded)
        announce_held(loaded.warnings, effective)
        return effective, schedules()
    finally:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)


def register(app: typer.Typer) -> None:
    """Add ``schedules`` to `app`."""

    @app.command(rich_help_panel="Inspect")
    @takes_connection
    def schedules(
        imports: Annotated[
            list[str] | None,
            imports_option(
                "Module declaring schedules (repeatable), as for asynctasq worker. "
                "(env: ASYNCTASQ_WORKER_IMPORTS, comma-separated)"
            ),
        ] = None,
        allowed_roots: Annotated[
            list[str] | None,
            allowed_roots_option(
                "Directory task code may be imported from (repeatable). "
                "(env: ASYNCTASQ_WORKER_ALLOWED_ROOTS; default: the working directory)"
            ),
        ] = None,
        count: Annotated[
            int, typer.Option("--next", "-n", min=1, max=50, help="Next run times to show.")
        ] = 3,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
        *,
        connection: ConnectionOptions,
    ) -> None:
        """List the declared schedules: when they fire, next runs, last tick claimed.

        Example: asynctasq schedules --import myapp.tasks
        """
        with reporting_errors():
            loaded, found = list_schedules(
                connection,
                tuple(imports) if imports else None,
                tuple(allowed_roots) if allowed_roots else None,
            )
            rows = run(_rows(loaded, found, count)) if found else []
            if as_json:
                print_json([row.as_dict() for row in rows])
                return
            if not rows:
                stdout().print(
                    "No schedules declared in the imported modules "
                    "(name them with --import or ASYNCTASQ_WORKER_IMPORTS)."
                )
                return
            described = session.describe_driver(loaded)
            stdout().print(schedules_table(rows, f"Schedules (last ticks from {described})"))
            if not rows[0].last_known:
                stdout().print(
                    literal(f"{described} keeps no claims: the workers cannot run schedules on it")
                )


__all__ = ["Row", "list_schedules", "register", "schedules_table"]
