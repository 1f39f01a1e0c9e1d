"""``asynctasq workers``: the live workers, as their heartbeats describe them.

A worker renews its record every ``worker.heartbeat_interval`` seconds (5 by default) and
leaves the registry when it stops; a worker that dies without stopping disappears three
intervals after its last heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

import asynctasq
from asynctasq.drivers.base import WorkerRegistry
from asynctasq.lifecycle import WorkerInfo
from asynctasq.runner import run
from asynctasq_cli import session
from asynctasq_cli.capability import needing
from asynctasq_cli.commands.tasks import when
from asynctasq_cli.output import literal, print_json, reporting_errors, stdout, visible
from asynctasq_cli.settings import (
    ConnectionOptions,
    load_config,
    takes_connection,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]

RUNNING_SHOWN = 5
"""Task ids listed per worker in the table (``--json`` has them all)."""


def ago(moment: datetime, now: float | None = None) -> str:
    """``3s ago``, ``2m05s ago``: how long since `moment`."""
    seconds = max(0, int((time.time() if now is None else now) - moment.timestamp()))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m ago"
    if minutes:
        return f"{minutes}m{secs:02d}s ago"
    return f"{secs}s ago"


def worker_cell(info: WorkerInfo) -> Text:
    """The worker's id, then its host, pid and start time (dim)."""
    cell = Text(visible(info.worker_id), style="bold")
    cell.append(f"\nhost {visible(info.host)} · pid {info.pid}", style="dim")
    cell.append(f"\nsince {when(info.started_at)}", style="dim")
    return cell


def running_cell(info: WorkerInfo) -> Text:
    """``running/concurrency``, then the ids of the tasks it runs (the first few)."""
    cell = Text(f"{len(info.running)}/{info.concurrency}", style="bold")
    for task_id in info.running[:RUNNING_SHOWN]:
        cell.append(f"\n{visible(task_id)}")
    if len(info.running) > RUNNING_SHOWN:
        cell.append(f"\n... and {len(info.running) - RUNNING_SHOWN} more", style="dim")
    return cell


def counts_cell(info: WorkerInfo) -> Text:
    """Tasks taken since it started, then how they ended."""
    cell = Text(f"{info.processed:,}", style="bold")
    cell.append(f"\n{info.succeeded:,} succeeded", style="dim")
    cell.append(f"\n{info.failed:,} failed", style="red" if info.failed else "dim")
    cell.append(f"\n{info.retried:,} retried", style="dim")
    return cell


QUEUES_LISTED = 20
"""Queue names shown per worker (a record may name thousands)."""


def queue_list(queues: Sequence[str]) -> str:
    """The first `QUEUES_LISTED` of a worker's queues, and how many more there are."""
    text = ", ".join(queues[:QUEUES_LISTED])
    if len(queues) > QUEUES_LISTED:
        text += f" (+{len(queues) - QUEUES_LISTED:,} more)"
    return text


def workers_table(rows: Sequence[WorkerInfo], title: str) -> Table:
    """Workers: id (host, pid, start), queues, running tasks, counters, last heartbeat.

    Few columns, each folding, so the table stays readable on a narrow terminal.
    """
    table = Table(title=literal(title), title_justify="left")
    table.add_column("worker", overflow="fold", min_width=12)
    table.add_column("queues", overflow="fold", min_width=6)
    table.add_column("running", overflow="fold", min_width=8)
    table.add_column("processed", no_wrap=True)
    table.add_column("heartbeat", min_width=6)
    for w in rows:
        table.add_row(
            worker_cell(w),
            Text(visible(queue_list(w.queues))),
            running_cell(w),
            counts_cell(w),
            ago(w.heartbeat_at),
        )
    return table


async def _workers(connection: ConnectionOptions) -> tuple[str, list[WorkerInfo]]:
    loaded = load_config(connection)
    async with session.open_driver(loaded) as driver:
        found = await needing(driver, WorkerRegistry, asynctasq.list_workers(driver=driver))
    return session.describe_driver(loaded), found


def register(app: typer.Typer) -> None:
    """Add ``workers`` to `app`."""

    @app.command(rich_help_panel="Inspect")
    @takes_connection
    def workers(
        as_json: JsonOption = False,
        *,
        connection: ConnectionOptions,
    ) -> None:
        """List the live workers: queues, what they run now, their counters, heartbeats.

        A worker that dies without stopping disappears three heartbeat intervals after its
        last heartbeat (worker.heartbeat_interval, 5 s by default).
        """
        with reporting_errors():
            described, found = run(_workers(connection))
            if as_json:
                print_json([w.as_dict() for w in found])
                return
            if not found:
                stdout().print(literal(f"No live workers on {described}."))
                return
            stdout().print(workers_table(found, f"Live workers on {described}"))


__all__ = [
    "ago",
    "counts_cell",
    "queue_list",
    "register",
    "running_cell",
    "worker_cell",
    "workers_table",
]
