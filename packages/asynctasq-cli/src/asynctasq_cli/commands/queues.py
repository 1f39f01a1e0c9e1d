"""``asynctasq queues`` (depth per queue) and ``asynctasq purge QUEUE``.

On drivers that hold claims (`ClaimStore`), each queue also shows how many of its tasks
expired (``expires``) before a worker started them: a counter per queue that workers keep
(`asynctasq.core.expired_counts`), read with one call per queue.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from asynctasq.core.expired_counts import read_expired
from asynctasq.core.unique import holds_claims
from asynctasq.drivers.base import ClaimStore, Driver, QueueStats
from asynctasq.runner import run
from asynctasq_cli import session
from asynctasq_cli.output import confirm, literal, print_json, reporting_errors, stdout
from asynctasq_cli.settings import ConnectionOptions, load_config, takes_connection

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]


def stats_as_dict(stats: QueueStats) -> dict[str, Any]:
    """One queue's counts as a JSON-ready dict."""
    doc: dict[str, Any] = {
        "queue": stats.queue,
        "ready": stats.ready,
        "delayed": stats.delayed,
        "in_flight": stats.in_flight,
        "dead": stats.dead,
    }
    extra = dict(stats.extra)
    if "expired" in extra:
        doc["expired"] = extra.pop("expired")
    if extra:
        doc["extra"] = extra
    return doc


def stats_table(rows: Sequence[QueueStats], title: str) -> Table:
    """The depth table: queue, ready, delayed, in flight, dead (and expired, where the
    driver counts them), with a total row.

    `title` and the queue names are shown literally (a queue named ``[/]`` is not markup).
    """
    table = Table(title=literal(title), title_justify="left", show_footer=len(rows) > 1)
    totals = [sum(getattr(r, f) for r in rows) for f in ("ready", "delayed", "in_flight", "dead")]
    table.add_column("queue", footer="total", style="bold")
    for name, total in zip(("ready", "delayed", "in flight", "dead"), totals, strict=True):
        table.add_column(name, justify="right", footer=f"{total:,}")
    counted = any("expired" in r.extra for r in rows)
    if counted:
        expired_total = sum(_expired(r) for r in rows)
        table.add_column("expired", justify="right", footer=f"{expired_total:,}")
    for r in rows:
        dead = f"[red]{r.dead:,}[/]" if r.dead else "0"
        cells = [literal(r.queue), f"{r.ready:,}", f"{r.delayed:,}", f"{r.in_flight:,}", dead]
        if counted:
            cells.append(f"[yellow]{_expired(r):,}[/]" if _expired(r) else "0")
        table.add_row(*cells)
    return table


def _expired(stats: QueueStats) -> int:
    value = stats.extra.get("expired", 0)
    return value if isinstance(value, int) else 0


async def with_expired(driver: Driver, rows: list[QueueStats]) -> list[QueueStats]:
    """`rows` with ``extra["expired"]`` (tasks that expired before they ran) when `driver`
    keeps the counters, else unchanged."""
    if not rows or not holds_claims(driver):
        return rows
    counts = await read_expired(cast(ClaimStore, driver), [r.queue for r in rows])
    return [
        dataclasses.replace(r, extra={**r.extra, "expired": n})
        for r, n in zip(rows, counts, strict=True)
    ]


async def collect_stats(
    connection: ConnectionOptions, names: Sequence[str]
) -> tuple[str, list[QueueStats]]:
    """The driver's description and the stats of `names` (all known queues when empty)."""
    loaded = load_config(connection)
    async with session.open_driver(loaded) as driver:
        queues = list(names) or sorted(await driver.queue_names())
        rows = await with_expired(driver, await driver.stats(queues) if queues else [])
    return session.describe_driver(loaded), rows


async def purge_queue(connection: ConnectionOptions, queue: str) -> tuple[str, int]:
    """Delete the ready and delayed messages of `queue`; the driver and how many went."""
    loaded = load_config(connection)
    async with session.open_driver(loaded) as driver:
        return session.describe_driver(loaded), await driver.purge(queue)


def register(app: typer.Typer) -> None:
    """Add ``queues`` and ``purge`` to `app`."""

    @app.command(rich_help_panel="Inspect")
    @takes_connection
    def queues(
        names: Annotated[
            list[str] | None,
            typer.Argument(
                metavar="[QUEUE]...",
                help="Queues to show (default: all known).",
                show_default=False,
            ),
        ] = None,
        as_json: JsonOption = False,
        *,
        connection: ConnectionOptions,
    ) -> None:
        """Show each queue's depth: ready, delayed, in-flight, dead and expired messages.

        Expired counts tasks that expired before they ran, on drivers that count them.
        """
        with reporting_errors():
            described, rows = run(collect_stats(connection, names or []))
            if as_json:
                print_json([stats_as_dict(r) for r in rows])
                return
            console = stdout()
            if not rows:
                console.print(literal(f"No queues on {described}."))
                return
            console.print(stats_table(rows, described))

    @app.command(rich_help_panel="Manage")
    @takes_connection
    def purge(
        queue: Annotated[str, typer.Argument(help="The queue to empty.", show_default=False)],
        yes: Annotated[
            bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
        ] = False,
        *,
        connection: ConnectionOptions,
    ) -> None:
        """Delete the ready and delayed messages of a queue.

        Running tasks and dead letters are kept.
        """
        with reporting_errors():
            if not yes:
                confirm(
                    f"Delete every ready and delayed message of {queue!r}?",
                    f"purging {queue!r} deletes its messages: confirm with --yes",
                )
            described, count = run(purge_queue(connection, queue))
            stdout().print(literal(f"Purged {count:,} message(s) from {queue!r} on {described}."))


__all__ = ["collect_stats", "purge_queue", "register", "stats_as_dict", "stats_table"]
